"""One CSV import: who started it, what it read, what it did, and where its error file is."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ImportRun(models.Model):
    """A CSV import of customers or touchpoints, from the upload screen or the command.

    Progress fields are written while the file is read, so the screen can show a bar; the
    counts are final once ``status`` leaves *queued*/*running*.
    """

    class Kind(models.TextChoices):
        CUSTOMERS = "customers", "Customers"
        TOUCHPOINTS = "touchpoints", "Touchpoints"

    class Mode(models.TextChoices):
        ATOMIC = "atomic", "All or nothing"
        SKIP = "skip", "Skip bad rows"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Imported"
        REJECTED = "rejected", "Rejected"  # nothing imported: the file or its rows have errors
        FAILED = "failed", "Failed"  # something broke (not the file): nothing imported

    class Phase(models.TextChoices):
        WAITING = "waiting", "Waiting for a worker"
        READING = "reading", "Reading and checking rows"
        VALIDATING = "validating", "Checking references"
        IMPORTING = "importing", "Importing"
        DONE = "done", "Done"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ATOMIC)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.WAITING)
    source = models.CharField(
        max_length=64,
        blank=True,
        help_text="Touchpoints: the source they are recorded under; with the id column it "
        "makes a re-import create nothing new.",
    )
    # Uploads are kept (the worker reads them); the command reads its file in place.
    file = models.FileField(upload_to="imports/uploads/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    rows_total = models.BigIntegerField(null=True, blank=True, help_text="Known once read.")
    rows_done = models.BigIntegerField(default=0)
    rows_ok = models.BigIntegerField(default=0)
    rows_bad = models.BigIntegerField(default=0)
    created_count = models.BigIntegerField(default=0)
    updated_count = models.BigIntegerField(default=0)
    duplicate_count = models.BigIntegerField(
        default=0, help_text="Touchpoints already imported; customers already up to date."
    )
    message = models.TextField(blank=True)
    errors_sample = models.JSONField(default=list, blank=True)
    error_file = models.FileField(upload_to="imports/errors/", blank=True)
    timings = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    origin = models.CharField(max_length=16, default="screen")  # screen | command | bench
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at"], name="importrun_created_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} import #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in {self.Status.QUEUED, self.Status.RUNNING}

    @property
    def percent(self) -> int:
        """Progress for the bar: reading is most of the work; the rest is shown at 90–100 %."""
        if not self.is_active:
            return 100
        if self.phase in {self.Phase.VALIDATING, self.Phase.IMPORTING}:
            return 90 if self.phase == self.Phase.VALIDATING else 95
        if not self.file_size:
            return 0
        return min(89, int(89 * self.bytes_read / self.file_size))

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def started_by(self) -> str:
        if self.created_by is not None:
            return self.created_by.get_username()
        return self.origin

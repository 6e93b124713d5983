import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from imports import services
from imports.models import ImportRun


class Command(BaseCommand):
    help = (
        "Import customers or touchpoints from a CSV file (UTF-8, header row). All or nothing "
        "unless --skip-bad-rows. Errors go to an error file (row, column, value, message). "
        "Formats: README.md, docs/import-export.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=[k.value for k in ImportRun.Kind])
        parser.add_argument("file")
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="Import the good rows and list the bad ones (default: any bad row imports "
            "nothing).",
        )
        parser.add_argument(
            "--source",
            default="",
            help="Touchpoints: the source they are recorded under (default 'csv'); with an id "
            "column, importing the same file again under the same source creates nothing new.",
        )

    def handle(self, *args, kind, file, skip_bad_rows, source, **options):
        try:
            with open(file, "rb") as stream:
                size = stream.seek(0, 2)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        mode = ImportRun.Mode.SKIP if skip_bad_rows else ImportRun.Mode.ATOMIC
        with tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"{kind} rows",
            disable=not sys.stderr.isatty(),
        ) as bar:

            def progress(bytes_read: int, rows_done: int) -> None:
                bar.update(max(0, bytes_read - bar.n))
                bar.set_postfix_str(f"{rows_done:,} rows")

            run = services.import_file(
                kind=kind, path=file, mode=mode, source=source, progress=progress
            )
            bar.update(max(0, size - bar.n))
        self._report(run)

    def _report(self, run: ImportRun) -> None:
        for error in run.errors_sample[:10]:
            self.stdout.write(f"  row {error['row']}: {error['message']}")
        if run.rows_bad > len(run.errors_sample[:10]):
            self.stdout.write(f"  … {run.rows_bad:,} bad rows in all.")
        if run.error_file:
            self.stdout.write(f"Error file: {run.error_file.path}")
        seconds = run.duration_seconds or 0.0
        rate = f" ({run.rows_total / seconds:,.0f} rows/s)" if run.rows_total and seconds else ""
        summary = f"Import #{run.pk} {run.get_status_display().lower()} in {seconds:.1f}s{rate}."
        if run.status == ImportRun.Status.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(run.message))
            self.stdout.write(summary)
            return
        self.stdout.write(summary)
        raise CommandError(run.message)

from django.core.management.base import BaseCommand
from tqdm import tqdm

from customers import jobs


class Command(BaseCommand):
    help = (
        "Bring engagement up to date. Default: the incremental refresh (queued touchpoints, "
        "customers due to change stage). --full: recompute every customer from history."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true")
        parser.add_argument(
            "--scores-only",
            action="store_true",
            help="With --full: decay sums only (what a weight or half-life change needs).",
        )

    def handle(self, *args, full, scores_only, **options):
        if not full:
            run = jobs.refresh_run()
            self.stdout.write(
                f"Refresh {run.status}: {run.customers_processed:,} customers, "
                f"{run.changes_made:,} stage changes, "
                f"{run.detail.get('touchpoints_applied', 0):,} touchpoints applied."
            )
            return
        run = jobs.rescore_start(full=not scores_only, reason="command", triggered_by="command")
        with tqdm(total=run.chunks_total, unit="chunk", disable=not self.stdout.isatty()) as bar:
            run = jobs.run_inline(run, progress=bar.update)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rescore {run.status}: {run.customers_processed:,} customers updated, "
                f"{run.changes_made:,} stage changes in {run.duration_seconds:.1f}s."
            )
        )

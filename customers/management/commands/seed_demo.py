from datetime import date

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from customers.demo import (
    as_of_from_date,
    demo_clear,
    demo_default_as_of,
    demo_history_replay,
    demo_seed,
)


class Command(BaseCommand):
    help = "Generate a believable demo population of customers and touchpoints."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--as-of",
            type=date.fromisoformat,
            help="Date the history ends (YYYY-MM-DD); default today. Same seed and date give "
            "the same data.",
        )
        parser.add_argument(
            "--replace", action="store_true", help="Delete existing demo customers first."
        )
        parser.add_argument(
            "--history-days",
            type=int,
            default=0,
            help="Then run the engine once per day over this many past days (stage changes, "
            "snapshots and trends for the screens); 0 computes only the present.",
        )

    def handle(self, *args, customers, seed, as_of, replace, history_days, **options):
        if replace:
            removed, touchpoints = demo_clear()
            self.stdout.write(f"Removed {removed} demo customers and {touchpoints} touchpoints.")
        with tqdm(
            total=customers, unit="customers", disable=not self.stdout.isatty(), leave=False
        ) as bar:
            try:
                result = demo_seed(
                    customers=customers,
                    seed=seed,
                    as_of=as_of_from_date(as_of) if as_of else None,
                    progress=bar.update,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        moment = as_of_from_date(as_of) if as_of else demo_default_as_of()
        with tqdm(
            total=history_days + 1, unit="day", disable=not self.stdout.isatty(), leave=False
        ) as bar:
            demo_history_replay(days=history_days, as_of=moment, progress=bar.update)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {result.customers:,} customers and {result.touchpoints:,} touchpoints "
                f"in {result.seconds:.1f}s."
            )
        )

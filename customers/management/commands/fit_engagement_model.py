from datetime import UTC, date, datetime, time

from django.core.management.base import BaseCommand, CommandError

from customers.engagement import engagement_fit


class Command(BaseCommand):
    help = "Fit the MBG/NBD 'still engaged' model and print its parameters."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD; default now")

    def handle(self, *args, as_of, **options):
        moment = datetime.combine(as_of, time.max, tzinfo=UTC) if as_of else None
        try:
            fit = engagement_fit(as_of=moment)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"MBG/NBD fit as of {fit.as_of:%Y-%m-%d %H:%M} on {fit.customers:,} customers "
            f"in {fit.seconds:.1f}s ({'converged' if fit.converged else 'NOT converged'}):\n"
            f"  r={fit.r:.4f}  alpha={fit.alpha:.4f}  a={fit.a:.4f}  b={fit.b:.4f}  "
            f"log-likelihood={fit.log_likelihood:,.1f}"
        )

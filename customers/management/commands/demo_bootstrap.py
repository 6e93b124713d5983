from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from customers.demo import demo_owners_ensure, demo_password
from customers.models import Customer
from customers.roles import Role

DEMO_USERS = (
    ("admin", "Avery", "Admin", Role.ADMIN, True),
    ("marketer", "Morgan", "Marketer", Role.MARKETER, False),
    ("success", "Casey", "Success", Role.CUSTOMER_SUCCESS, False),
)


class Command(BaseCommand):
    help = "For `make run`: demo logins (printed) and demo data, created once."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)

    def handle(self, *args, customers, **options):
        if settings.PRODUCTION:
            raise CommandError(
                "demo_bootstrap creates known logins; it refuses to run in production."
            )
        password_file = settings.VAR_DIR / "demo-login.txt"
        if password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = demo_password()
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        user_model = get_user_model()
        for username, first, last, role, superuser in DEMO_USERS:
            user, _ = user_model.objects.get_or_create(username=username)
            user.first_name, user.last_name = first, last
            user.is_staff = superuser
            user.is_superuser = superuser
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=role.value))
        demo_owners_ensure(password)
        if not Customer.objects.exists():
            call_command("seed_demo", customers=customers, history_days=35, stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS(
                "\n  Lifecycle is starting on http://127.0.0.1:8000/\n"
                f"  Demo logins (password for all: {password}):\n"
                "    admin     — Admin (everything, incl. settings and jobs)\n"
                "    marketer  — Marketer (segments, plans, results)\n"
                "    success   — Customer success (renewal risk, notes)\n"
            )
        )

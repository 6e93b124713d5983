from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db.models import Count, Max

from customers.demo import demo_clear, demo_seed
from customers.models import Customer, Engagement, Touchpoint

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot() -> tuple[list, list]:
    customers = list(
        Customer.objects.order_by("external_id").values_list(
            "external_id",
            "email",
            "name",
            "company",
            "plan",
            "region",
            "spend_tier",
            "lifetime_revenue",
            "signup_date",
            "renewal_date",
            "owner__username",
            "email_opt_out",
            "traits",
        )
    )
    touchpoints = sorted(
        Touchpoint.objects.values_list("customer__external_id", "type__key", "occurred_at", "value")
    )
    return customers, touchpoints


def test_same_seed_gives_the_same_population():
    demo_seed(customers=600, seed=7, as_of=AS_OF)
    first = snapshot()
    demo_clear()
    assert Customer.objects.count() == 0
    demo_seed(customers=600, seed=7, as_of=AS_OF)
    assert snapshot() == first
    assert len(first[1]) > 600 * 5


def test_another_seed_gives_another_population():
    demo_seed(customers=300, seed=1, as_of=AS_OF)
    first = snapshot()
    demo_clear()
    demo_seed(customers=300, seed=2, as_of=AS_OF)
    assert snapshot() != first


def test_population_is_believable():
    demo_seed(customers=3000, seed=3, as_of=AS_OF)
    assert Customer.objects.count() == 3000
    assert Engagement.objects.count() == 3000
    archetypes = dict(Customer.objects.values_list("traits__archetype").annotate(n=Count("id")))
    assert set(archetypes) == {"engaged", "new", "cooling", "at_risk", "lapsed", "reengaged"}
    assert all(n > 100 for n in archetypes.values())
    times = Touchpoint.objects.values_list("occurred_at", flat=True)
    assert max(times) <= AS_OF
    assert (AS_OF - min(times)).days <= 549  # 18 months of history
    channels = set(Touchpoint.objects.values_list("type__channel", flat=True).distinct())
    assert {"email", "web", "product", "phone", "in_person", "support", "billing"} <= channels
    # Renewal dates spread over the next year, only for paying plans.
    renewals = Customer.objects.exclude(renewal_date=None).values_list("renewal_date", flat=True)
    assert min(renewals) > AS_OF.date()
    assert (max(renewals) - min(renewals)).days > 300
    assert not Customer.objects.filter(plan="Free").exclude(renewal_date=None).exists()

    # Lapsed customers have not acted lately; engaged ones have.
    def median_days_since_last_action(archetype: str) -> int:
        lasts = (
            Touchpoint.objects.filter(
                customer__traits__archetype=archetype, type__counts_as_engagement=True
            )
            .values("customer")
            .annotate(last=Max("occurred_at"))
            .values_list("last", flat=True)
        )
        ages = sorted((AS_OF - t).days for t in lasts)
        assert ages
        return ages[len(ages) // 2]

    assert median_days_since_last_action("engaged") < 30
    assert median_days_since_last_action("lapsed") > 60


def test_seeding_twice_without_replace_is_refused_with_a_clear_message():
    from django.core.management.base import CommandError

    call_command("seed_demo", customers=50, seed=1, as_of=AS_OF.date())
    with pytest.raises(CommandError, match="already exist"):
        call_command("seed_demo", customers=50, seed=1, as_of=AS_OF.date())
    call_command("seed_demo", customers=80, seed=1, as_of=AS_OF.date(), replace=True)
    assert Customer.objects.count() == 80


def test_new_customers_after_seeding_get_fresh_ids():
    demo_seed(customers=20, seed=1, as_of=AS_OF)
    created = Customer.objects.create(external_id="after-seed", signup_date=AS_OF.date())
    assert created.pk > Customer.objects.exclude(pk=created.pk).order_by("-pk").first().pk

"""Customer CSV imports: upsert by external id, on the configured database."""

from datetime import date
from decimal import Decimal

import pytest

from customers.models import Customer, Engagement
from imports.models import ImportRun
from tests.factories import CustomerFactory, UserFactory
from tests.imports.conftest import error_rows

pytestmark = pytest.mark.django_db

HEADER = (
    "external_id,email,name,company,plan,region,spend_tier,lifetime_revenue,signup_date,"
    "renewal_date,owner,email_opt_out,traits\n"
)


@pytest.fixture
def owner(db):
    return UserFactory(username="cleo", is_staff=True)


def test_new_customers_are_created_with_engine_rows(owner, run_import):
    content = HEADER + (
        "c-1,ada@acme.example,Ada,Acme,Pro,Europe,High,1200.50,2025-03-14,2026-03-14,cleo,yes,"
        '"{""seats"": 12}"\n'
        "c-2,,,,,,,,2025-04-01,,,,\n"
    )
    run = run_import("customers", content)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert (run.created_count, run.updated_count, run.duplicate_count) == (2, 0, 0)
    ada = Customer.objects.get(external_id="c-1")
    assert (ada.email, ada.name, ada.company, ada.plan, ada.region) == (
        "ada@acme.example",
        "Ada",
        "Acme",
        "Pro",
        "Europe",
    )
    assert ada.spend_tier == "high" and ada.lifetime_revenue == Decimal("1200.50")
    assert (ada.signup_date, ada.renewal_date) == (date(2025, 3, 14), date(2026, 3, 14))
    assert ada.owner == owner and ada.email_opt_out is True and ada.traits == {"seats": 12}
    bare = Customer.objects.get(external_id="c-2")
    assert (bare.spend_tier, bare.lifetime_revenue, bare.owner, bare.traits) == (
        "low",
        Decimal("0"),
        None,
        {},
    )
    assert set(Engagement.objects.values_list("customer_id", flat=True)) == {ada.pk, bare.pk}
    assert "2 customers created, 0 updated, 0 unchanged" in run.message


def test_existing_customers_are_updated_and_empty_cells_keep_values(owner, run_import):
    CustomerFactory(
        external_id="c-1",
        email="old@acme.example",
        name="Old name",
        plan="Starter",
        traits={"seats": 3, "color": "blue"},
        is_identified=False,
    )
    content = "external_id,name,plan,traits\n" + 'c-1,,Pro,"{""seats"": 12}"\n'
    run = run_import("customers", content)
    assert (run.created_count, run.updated_count, run.duplicate_count) == (0, 1, 0)
    customer = Customer.objects.get(external_id="c-1")
    assert customer.name == "Old name"  # empty cell: unchanged
    assert customer.email == "old@acme.example"  # absent column: unchanged
    assert customer.plan == "Pro"
    assert customer.traits == {"seats": 12, "color": "blue"}  # merged
    assert customer.is_identified is True  # a CSV row identifies the customer


def test_reimporting_the_same_customers_changes_nothing(owner, run_import):
    content = HEADER + "c-1,a@b.example,A,,,,,,2025-03-14,,cleo,false,\n"
    run_import("customers", content)
    before = Customer.objects.get(external_id="c-1").updated_at
    again = run_import("customers", content)
    assert (again.created_count, again.updated_count, again.duplicate_count) == (0, 0, 1)
    assert Customer.objects.get(external_id="c-1").updated_at == before
    assert "1 unchanged" in again.message


def test_a_new_customer_needs_a_signup_date_an_existing_one_does_not(run_import):
    CustomerFactory(external_id="known")
    content = "external_id,name\nknown,Kim\nnew-one,Nia\n"
    run = run_import("customers", content)
    assert run.status == ImportRun.Status.REJECTED
    (error,) = run.errors_sample
    assert (error["row"], error["column"]) == (3, "signup_date")
    assert "required for a new customer" in error["message"]
    assert Customer.objects.get(external_id="known").name != "Kim"  # nothing imported
    skipped = run_import("customers", content, skip=True)
    assert (skipped.created_count, skipped.updated_count, skipped.rows_bad) == (0, 1, 1)


def test_one_row_per_customer(run_import):
    content = "external_id,name,signup_date\nc-1,A,2025-01-01\nc-2,B,2025-01-01\nc-1,C,2025-01-01\n"
    run = run_import("customers", content, skip=True)
    (error,) = run.errors_sample
    assert error["row"] == 4 and error["message"] == (
        "external_id repeats row 2 of this file: one row per customer"
    )
    assert Customer.objects.get(external_id="c-1").name == "A"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("email", "not-an-email", "is not a valid email address"),
        ("spend_tier", "platinum", "must be one of free, low, mid, high, enterprise"),
        ("lifetime_revenue", "1.234,50", "is not a number"),
        ("signup_date", "14/03/2025", "is not a date in the form YYYY-MM-DD"),
        ("signup_date", "2025-02-29", "is not a real date"),
        ("owner", "nobody", "'nobody' is not the username of an active staff user"),
        ("email_opt_out", "maybe", "must be true or false"),
        ("traits", "seats=12", "is not valid JSON"),
        ("name", "x" * 201, "longer than 200 characters"),
    ],
)
def test_bad_cells_are_reported(owner, run_import, column, value, message):
    content = f'external_id,signup_date,{column}\nc-1,2025-01-01,"{value}"\n'
    if column == "signup_date":
        content = f'external_id,{column}\nc-1,"{value}"\n'
    run = run_import("customers", content)
    assert run.status == ImportRun.Status.REJECTED
    (error,) = run.errors_sample
    assert (error["row"], error["column"], error["value"]) == (2, column, value)
    assert message in error["message"]
    assert error_rows(run)[1][:2] == ["2", column]
    assert not Customer.objects.exists()


def test_unknown_customer_column_is_named(run_import):
    run = run_import("customers", "external_id,e_mail\n")
    assert "Unknown column 'e_mail'. Did you mean 'email'?" in run.message

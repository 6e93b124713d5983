"""factory_boy factories shared by the whole suite."""

from datetime import UTC, date, datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from customers.engagement import engine_rows_ensure
from customers.models import Customer, Touchpoint, TouchpointType


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*Group.objects.filter(name__in=[str(r) for r in extracted]))


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"cust-{n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    name = factory.Sequence(lambda n: f"Customer {n}")
    signup_date = date(2026, 1, 15)

    @factory.post_generation
    def engine_rows(self, create, extracted, **kwargs):
        """Every customer gets its engine rows, as every ingest path gives them."""
        if create:
            engine_rows_ensure([self.pk])


class TouchpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Touchpoint

    customer = factory.SubFactory(CustomerFactory)
    type = factory.LazyFunction(lambda: TouchpointType.objects.get(key="login"))
    occurred_at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    source = "test"

from datetime import timedelta

import pytest
from django.utils import timezone

from bench.screens_risk import measure
from customers.models import Engagement
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_measure_times_every_request(login, cs_user):
    c = CustomerFactory(renewal_date=timezone.localdate() + timedelta(days=5), owner=cs_user)
    Engagement.objects.filter(customer=c).update(stage="at_risk")
    times = measure(login(cs_user), requests=8)
    assert len(times) == 8 and all(t > 0 for t in times)

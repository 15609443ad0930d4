"""Price experiments: deterministic assignment, exposure once, and arms that never move."""

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from monetization.models import ApiKey, AuditEvent, Customer
from monetization.services.permissions import System
from subscriptions.models import Experiment, ExperimentArm, ExperimentExposure
from subscriptions.services.experiments import arm_assign, experiment_start, experiment_stop
from tests.monetization.factories import CustomerFactory

URL = "/api/v1/customers/{cid}/experiments/{key}"
SEED = System("test")


def _experiment(key="paywall", weights=(("control", 50), ("annual-first", 50)), salt="s1", start=True):
    experiment = Experiment.objects.create(key=key, name=key, salt=salt)
    for arm_key, weight in weights:
        ExperimentArm.objects.create(experiment=experiment, key=arm_key, weight=weight, offering={"paywall": arm_key})
    if start:
        experiment_start(actor=SEED, experiment_id=experiment.pk)
    return experiment


weights_strategy = st.lists(
    st.tuples(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(min_value=1, max_value=10_000)),
    min_size=1,
    max_size=6,
    unique_by=lambda arm: arm[0],
)


@given(salt=st.text(max_size=40), customer=st.text(min_size=1, max_size=64), weights=weights_strategy)
def test_assignment_is_a_function_of_salt_customer_and_weights(salt, customer, weights):
    first = arm_assign(salt, customer, weights)
    assert first in {key for key, _ in weights}
    assert all(arm_assign(salt, customer, list(weights)) == first for _ in range(3))


@pytest.mark.django_db
@settings(max_examples=25, deadline=None)
@given(
    salt=st.from_regex(r"[A-Za-z0-9]{0,20}", fullmatch=True),
    customer=st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
    weights=weights_strategy,
    new_weights=st.lists(st.integers(min_value=1, max_value=10_000), min_size=6, max_size=6),
)
def test_an_exposed_customer_keeps_their_arm_through_weight_edits_and_stop(salt, customer, weights, new_weights):
    ExperimentExposure.objects.all().delete()
    ExperimentArm.objects.all().delete()
    Experiment.objects.all().delete()
    Customer.objects.get_or_create(external_id=customer, defaults={"handle": f"h{customer}"})
    experiment = _experiment(weights=weights, salt=salt)
    client = _client()
    first = client.get(URL.format(cid=customer, key="paywall")).json()["arm"]
    # Reweighting skews every later assignment; the exposed customer does not move.
    for arm, weight in zip(experiment.arms.order_by("id"), new_weights, strict=False):
        ExperimentArm.objects.filter(pk=arm.pk).update(weight=weight)
    assert client.get(URL.format(cid=customer, key="paywall")).json()["arm"] == first
    experiment_stop(actor=SEED, experiment_id=experiment.pk)
    assert client.get(URL.format(cid=customer, key="paywall")).json()["arm"] == first
    assert ExperimentExposure.objects.filter(experiment=experiment).count() == 1


def _client():
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="app", prefix=prefix, key_hash=key_hash, scopes=["catalog:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
    return client


@pytest.mark.parametrize(("weights", "salt"), [((50, 50), "split-a"), ((30, 70), "split-b"), ((10, 90), "split-c")])
def test_ten_thousand_customers_split_within_one_percent_of_the_weights(weights, salt):
    arms = [("a", weights[0]), ("b", weights[1])]
    counts = Counter(arm_assign(salt, f"17{n:010d}", arms) for n in range(10_000))
    for key, weight in arms:
        assert abs(counts[key] / 10_000 - weight / sum(weights)) < 0.01


@pytest.mark.django_db
def test_the_endpoint_returns_the_arm_and_records_one_exposure(client_with_scopes):
    customer = CustomerFactory()
    _experiment()
    client = client_with_scopes("catalog:read")
    first = client.get(URL.format(cid=customer.external_id, key="paywall"))
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["experiment"] == "paywall" and body["state"] == "running"
    assert body["arm"] in {"control", "annual-first"} and body["offering"] == {"paywall": body["arm"]}
    again = client.get(URL.format(cid=customer.external_id, key="paywall")).json()
    assert again["arm"] == body["arm"]
    assert ExperimentExposure.objects.get().arm.key == body["arm"]


@pytest.mark.django_db
def test_draft_or_unknown_experiments_and_unknown_customers_are_404(client_with_scopes):
    customer = CustomerFactory()
    _experiment(key="draft", start=False)
    client = client_with_scopes("catalog:read")
    for key in ("draft", "nope"):
        response = client.get(URL.format(cid=customer.external_id, key=key))
        assert response.status_code == 404 and response.json()["code"] == "experiment_not_found"
    _experiment()
    assert client.get(URL.format(cid="nobody", key="paywall")).status_code == 404
    assert ExperimentExposure.objects.count() == 0


@pytest.mark.django_db
def test_a_stopped_experiment_assigns_nobody_new(client_with_scopes):
    experiment = _experiment()
    experiment_stop(actor=SEED, experiment_id=experiment.pk)
    customer = CustomerFactory()
    body = client_with_scopes("catalog:read").get(URL.format(cid=customer.external_id, key="paywall")).json()
    assert body["state"] == "stopped" and body["arm"] is None
    assert ExperimentExposure.objects.count() == 0


@pytest.mark.django_db
def test_the_endpoint_needs_the_catalog_scope(client_with_scopes):
    customer = CustomerFactory()
    _experiment()
    response = client_with_scopes("entitlements:read").get(URL.format(cid=customer.external_id, key="paywall"))
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_record_one_exposure_and_agree_on_the_arm():
    customer = CustomerFactory()
    experiment = _experiment(weights=(("a", 1), ("b", 1), ("c", 1)))
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="app", prefix=prefix, key_hash=key_hash, scopes=["catalog:read"])
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    arms, errors = [], []

    def view():
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
            barrier.wait()
            response = client.get(URL.format(cid=customer.external_id, key="paywall"))
            if response.status_code == 200:
                arms.append(response.json()["arm"])
            else:
                errors.append(response.content)
        finally:
            connection.close()

    threads = [threading.Thread(target=view) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(arms) == threads_n and len(set(arms)) == 1
    assert ExperimentExposure.objects.filter(experiment=experiment, customer=customer).count() == 1


@pytest.mark.django_db
def test_staff_start_and_stop_in_the_admin_are_permission_checked_and_audited(client):
    experiment = _experiment(start=False)
    user_model = get_user_model()
    viewer = user_model.objects.create_user("viewer", password="pw-long-enough-123", is_staff=True)
    client.force_login(viewer)
    changelist = reverse("admin:subscriptions_experiment_changelist")
    response = client.post(changelist, {"action": "start_experiments", "_selected_action": [experiment.pk]})
    assert response.status_code == 403
    experiment.refresh_from_db()
    assert experiment.state == "draft"

    admin = user_model.objects.create_superuser("boss", password="pw-long-enough-123")
    client.force_login(admin)
    client.post(changelist, {"action": "start_experiments", "_selected_action": [experiment.pk]})
    client.post(changelist, {"action": "stop_experiments", "_selected_action": [experiment.pk]})
    experiment.refresh_from_db()
    assert experiment.state == "stopped"
    actions = list(
        AuditEvent.objects.filter(object_type="subscriptions.experiment").order_by("id").values_list("action", "actor")
    )
    assert actions == [("experiment.start", admin.pk), ("experiment.stop", admin.pk)]

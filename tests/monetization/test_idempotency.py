"""idempotent_run: the one way the API and the admin make a request idempotent (no HTTP involved)."""

import pytest

from monetization.errors import DomainError, InvalidInput
from monetization.models import IdempotencyKey
from monetization.services.idempotency import idempotent_run

pytestmark = pytest.mark.django_db


def test_work_runs_once_per_key_and_the_answer_is_replayed():
    calls = []

    def work():
        calls.append(1)
        return 201, {"refund": len(calls)}

    first = idempotent_run(scope="admin:user:1:refund", key="k1", fingerprint="f", work=work)
    again = idempotent_run(scope="admin:user:1:refund", key="k1", fingerprint="f", work=work)
    assert (first.status, first.body, first.replayed) == (201, {"refund": 1}, False)
    assert (again.status, again.body, again.replayed) == (201, {"refund": 1}, True)
    assert len(calls) == 1
    with pytest.raises(DomainError) as reused:
        idempotent_run(scope="admin:user:1:refund", key="k1", fingerprint="other", work=work)
    assert (reused.value.code, reused.value.status) == ("idempotency_key_reused", 422)
    assert len(calls) == 1


def test_work_that_fails_releases_the_key():
    def refused():
        raise InvalidInput("no")

    with pytest.raises(InvalidInput):
        idempotent_run(scope="s", key="k2", fingerprint="f", work=refused)
    assert not IdempotencyKey.objects.filter(scope="s", key="k2").exists()
    assert idempotent_run(scope="s", key="k2", fingerprint="f", work=lambda: (200, {"ok": True})).body == {"ok": True}

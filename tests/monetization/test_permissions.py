"""One permission rule for every service: a staff member with the permission, or a stated system cause."""

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser

from creators.models import Payout, PayoutHold, RevenueShareCycle
from creators.services.cycles import cycle_compute
from creators.services.payouts import payout_hold_place
from monetization.errors import PermissionDenied
from monetization.models import AuditEvent
from monetization.services.permissions import System, require_perm
from tests.creators.factories import staff
from tests.creators.test_payouts import approved_cycle

pytestmark = pytest.mark.django_db


def test_the_rule():
    finance, support = staff("fay", "Finance"), staff("sid", "Support")
    require_perm(finance, "creators.compute_cycle")
    require_perm(System("task:nightly"), "creators.compute_cycle")
    require_perm(support, "creators.compute_cycle", or_perm="monetization.request_refund")
    for nobody in (None, AnonymousUser(), support):
        with pytest.raises(PermissionDenied) as refused:
            require_perm(nobody, "creators.compute_cycle")
        assert refused.value.code == "permission_denied" and "creators.compute_cycle" in refused.value.detail
    with pytest.raises(ValueError):
        System(" ")


def test_a_service_called_without_an_actor_is_refused_and_changes_nothing():
    cycle = RevenueShareCycle.objects.create(period=datetime.date(2026, 8, 1))
    with pytest.raises(PermissionDenied):
        cycle_compute(cycle_id=cycle.pk, actor=None)
    cycle.refresh_from_db()
    assert cycle.state == RevenueShareCycle.State.OPEN and not AuditEvent.objects.exists()

    payout = Payout.objects.filter(cycle=approved_cycle(2)).first()
    with pytest.raises(PermissionDenied):
        payout_hold_place(payout_id=payout.pk, kind="fraud", reason="looks odd")
    assert not PayoutHold.objects.filter(payout=payout, lifted_at__isnull=True).exists()


def test_a_stated_system_cause_acts_and_is_named_in_the_audit_trail():
    cycle = RevenueShareCycle.objects.create(period=datetime.date(2026, 9, 1))
    cycle_compute(cycle_id=cycle.pk, actor=System("task:creators.cycle_compute"))
    cycle.refresh_from_db()
    assert cycle.state == RevenueShareCycle.State.COMPUTED and cycle.computed_by is None
    assert set(
        AuditEvent.objects.filter(object_id=str(cycle.pk)).values_list("actor_kind", "actor_label", "actor")
    ) == {("system", "task:creators.cycle_compute", None)}

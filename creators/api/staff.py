"""Staff API of revenue sharing: the admin's creator, payout-hold and cycle actions under
/api/v1/staff/, through the same services (permission, four-eyes, audit).

Session-authenticated staff only (``StaffView``); each view names the permission it needs and the
service checks it again (cycle transitions: the model's own transition permissions).
"""

from __future__ import annotations

from functools import partial

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from monetization.api.staff import ReasonIn, StaffView
from monetization.errors import NotFound

from .. import runs
from ..models import CreatorAccount, EligibilityDecision, Payout, PayoutHold, RevenueShareCycle
from ..models.cycles import APPROVE_PERM, COMPUTE_PERM
from ..services import accounts, cycles, eligibility, payouts

# The staff transitions of a creator account (the others are the system's) and "evaluate".
CREATOR_ACTIONS = {name: perm for name, perm in accounts.STAFF_TRANSITIONS.items() if perm}
EVALUATE_PERM = "creators.review_eligibility"


class StaffCreatorOut(serializers.ModelSerializer):
    class Meta:
        model = CreatorAccount
        fields = ["id", "customer", "state", "state_reason", "state_changed_at"]


class EligibilityDecisionOut(serializers.ModelSerializer):
    class Meta:
        model = EligibilityDecision
        fields = ["id", "creator", "decided_at", "eligible", "reasons"]


class StaffPayoutOut(serializers.ModelSerializer):
    class Meta:
        model = Payout
        fields = ["id", "cycle", "creator", "amount", "currency", "status", "transfer_id", "failure_reason"]


class PayoutHoldOut(serializers.ModelSerializer):
    class Meta:
        model = PayoutHold
        fields = ["id", "payout", "kind", "reason", "placed_by", "placed_at", "lifted_by", "lifted_at", "lift_reason"]


class CycleOut(serializers.ModelSerializer):
    class Meta:
        model = RevenueShareCycle
        fields = [
            "id",
            "period",
            "state",
            "currency",
            "revenue",
            "pool",
            "pools",
            "computed_by",
            "computed_at",
            "approved_by",
            "approved_at",
            "rejected_reason",
            "compute_processed",
            "compute_total",
            "pay_processed",
            "pay_total",
        ]


# --- creators: eligibility, suspension, bans -------------------------------------------------------


class CreatorActionView(StaffView):
    """suspend | reinstate | ban | mark_eligible | mark_ineligible (a reason each) | evaluate (the rules again)."""

    @property
    def required_perms(self):
        action = self.kwargs["action"]
        return (EVALUATE_PERM,) if action == "evaluate" else (CREATOR_ACTIONS[action],)

    class CreatorActionInputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", help_text="Not for evaluate")

    @extend_schema(
        request=CreatorActionInputSerializer,
        responses=StaffCreatorOut,
        parameters=[
            OpenApiParameter("action", str, OpenApiParameter.PATH, enum=[*CREATOR_ACTIONS, "evaluate"]),
        ],
        operation_id="staff_creators_action",
        tags=["staff"],
    )
    def post(self, request, pk: int, action: str):
        body = self.CreatorActionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if action == "evaluate":
            if not CreatorAccount.objects.filter(pk=pk).exists():
                raise NotFound("No such creator.")
            eligibility.eligibility_evaluate(creator_id=pk, actor=request.user)
            creator = CreatorAccount.objects.get(pk=pk)
        else:
            creator = accounts.creator_transition(
                creator_id=pk, transition=action, actor=request.user, reason=body.validated_data["reason"]
            )
        return Response(StaffCreatorOut(creator).data)


# --- payout holds ------------------------------------------------------------------------------------


class PayoutHoldPlaceView(StaffView):
    required_perms = (payouts.HOLD_PERM,)

    class HoldPlaceInputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(PayoutHold.Kind.choices)
        reason = serializers.CharField()

    @extend_schema(
        request=HoldPlaceInputSerializer,
        responses={201: PayoutHoldOut},
        operation_id="staff_payouts_hold_place",
        tags=["staff"],
    )
    def post(self, request, pk: int):
        body = self.HoldPlaceInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        hold = payouts.payout_hold_place(payout_id=pk, actor=request.user, **body.validated_data)
        return Response(PayoutHoldOut(hold).data, status=status.HTTP_201_CREATED)


class PayoutHoldLiftView(StaffView):
    required_perms = (payouts.HOLD_PERM,)

    @extend_schema(request=ReasonIn, responses=StaffPayoutOut, operation_id="staff_payout_holds_lift", tags=["staff"])
    def post(self, request, pk: int):
        body = ReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        payout = payouts.payout_hold_lift(hold_id=pk, reason=body.validated_data["reason"], actor=request.user)
        return Response(StaffPayoutOut(payout).data)


class PayoutRetryView(StaffView):
    """Send a failed payout back to the paying run."""

    required_perms = (payouts.RETRY_PERM,)

    @extend_schema(request=None, responses=StaffPayoutOut, operation_id="staff_payouts_retry", tags=["staff"])
    def post(self, request, pk: int):
        payout = payouts.payout_retry(payout_id=pk, actor=request.user)
        return Response(StaffPayoutOut(payout).data)


# --- revenue-share cycles ----------------------------------------------------------------------------


class CycleOpenView(StaffView):
    required_perms = ("creators.add_revenuesharecycle",)

    class CycleOpenInputSerializer(serializers.Serializer):
        period = serializers.DateField(help_text="Any day of the month the cycle shares out")

    @extend_schema(
        request=CycleOpenInputSerializer, responses={201: CycleOut}, operation_id="staff_cycles_open", tags=["staff"]
    )
    def post(self, request):
        body = self.CycleOpenInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cycle = cycles.cycle_open(period=body.validated_data["period"], actor=request.user)
        return Response(CycleOut(cycle).data, status=status.HTTP_201_CREATED)


# action -> (service, permission, takes a reason). The services check state, permission and four-eyes.
CYCLE_ACTIONS = {
    "compute": (runs.cycle_compute_request, COMPUTE_PERM, False),
    "submit": (cycles.cycle_submit, COMPUTE_PERM, False),
    "approve": (cycles.cycle_approve, APPROVE_PERM, True),
    "reject": (partial(cycles.cycle_reject, reopen=False), APPROVE_PERM, True),
    "reopen": (partial(cycles.cycle_reject, reopen=True), APPROVE_PERM, True),
    "pay": (runs.cycle_pay_request, APPROVE_PERM, False),
    "close": (cycles.cycle_close, APPROVE_PERM, True),
}


class CycleActionView(StaffView):
    """compute and pay queue their run (progress in compute_/pay_processed); approve, reject, reopen and
    close need a reason (approve: never by whoever computed it); approve and close also need ``confirm``
    (for close it also accepts closing over payouts Compliance holds)."""

    @property
    def required_perms(self):
        return (CYCLE_ACTIONS[self.kwargs["action"]][1],)

    class CycleActionInputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")
        confirm = serializers.BooleanField(
            required=False, default=False, help_text="approve and close: true, or confirmation_required"
        )

    @extend_schema(
        request=CycleActionInputSerializer,
        responses=CycleOut,
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=list(CYCLE_ACTIONS))],
        operation_id="staff_cycles_action",
        tags=["staff"],
    )
    def post(self, request, pk: int, action: str):
        body = self.CycleActionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        service, _, with_reason = CYCLE_ACTIONS[action]
        kwargs = {"reason": body.validated_data["reason"]} if with_reason else {}
        cycles.cycle_action_confirmed(
            action=action, reason=body.validated_data["reason"], confirmed=body.validated_data["confirm"]
        )
        if action == "close":
            kwargs["confirm"] = body.validated_data["confirm"]
        cycle = service(cycle_id=pk, actor=request.user, **kwargs)
        cycle = RevenueShareCycle.objects.get(pk=cycle.pk)
        return Response(CycleOut(cycle).data)


class CycleDryRunView(StaffView):
    """What the cycle's next run (compute or pay) would do; writes nothing but its audit event."""

    @property
    def required_perms(self):
        user = self.request.user
        return (COMPUTE_PERM,) if user.has_perm(COMPUTE_PERM) else (APPROVE_PERM,)

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, operation_id="staff_cycles_dry_run", tags=["staff"])
    def post(self, request, pk: int):
        return Response(cycles.cycle_dry_run(cycle_id=pk, actor=request.user))

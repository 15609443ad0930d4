"""Staff API: transfer one purchase to another customer, or merge two customers (preview, request, four-eyes)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from monetization.api.idempotency import idempotent
from monetization.api.staff import ReasonIn, StaffView
from monetization.models import Customer, CustomerMerge
from monetization.services import customer_merge as merges


class MovedOut(serializers.Serializer):
    what = serializers.CharField()
    count = serializers.IntegerField()
    amounts = serializers.DictField(child=serializers.CharField(), help_text="currency -> total")
    blocked = serializers.CharField()


class PreviewOut(serializers.Serializer):
    moves = MovedOut(many=True)
    needs_approval = serializers.BooleanField()
    approval_reason = serializers.CharField()
    blocked = serializers.ListField(child=serializers.CharField())


class CustomerMergeOut(serializers.ModelSerializer):
    kind = serializers.CharField(help_text="transfer (one purchase) or merge (everything)")
    source = serializers.CharField(source="source.external_id")
    target = serializers.CharField(source="target.external_id")
    preview = MovedOut(many=True)
    moved = MovedOut(many=True, allow_null=True)

    class Meta:
        model = CustomerMerge
        fields = [
            "id",
            "kind",
            "source",
            "target",
            "purchase_id",
            "status",
            "reason",
            "preview",
            "moved",
            "requested_by",
            "approved_by",
            "decided_reason",
            "requested_at",
            "decided_at",
            "completed_at",
        ]


class MoveIn(serializers.Serializer):
    source = serializers.CharField(max_length=64, help_text="External id of the customer things move from.")
    target = serializers.CharField(max_length=64, help_text="External id of the customer they move to (survivor).")
    purchase = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="A subscription id: transfer it alone."
    )


class MoveRequestIn(MoveIn):
    reason = serializers.CharField()


def _customers(data) -> tuple[Customer, Customer]:
    return (
        get_object_or_404(Customer, external_id=data["source"]),
        get_object_or_404(Customer, external_id=data["target"]),
    )


class CustomerMergePreviewView(StaffView):
    required_perms = ("monetization.request_customer_merge",)

    @extend_schema(request=MoveIn, responses=PreviewOut, operation_id="staff_customer_merges_preview", tags=["staff"])
    def post(self, request):
        body = MoveIn(data=request.data)
        body.is_valid(raise_exception=True)
        source, target = _customers(body.validated_data)
        preview = merges.ownership_move_preview(
            source=source, target=target, purchase_id=body.validated_data.get("purchase"), actor=request.user
        )
        return Response(preview.as_dict())


class CustomerMergeCreateView(StaffView):
    required_perms = ("monetization.request_customer_merge",)

    @extend_schema(
        request=MoveRequestIn,
        responses={201: CustomerMergeOut},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        operation_id="staff_customer_merges_create",
        tags=["staff"],
    )
    @idempotent("staff.customer_merges.create", required=False)
    def post(self, request):
        body = MoveRequestIn(data=request.data)
        body.is_valid(raise_exception=True)
        source, target = _customers(body.validated_data)
        merge = merges.customer_merge_request(
            source=source,
            target=target,
            purchase_id=body.validated_data.get("purchase"),
            reason=body.validated_data["reason"],
            requested_by=request.user,
        )
        return Response(CustomerMergeOut(merge).data, status=status.HTTP_201_CREATED)


class _Decision(StaffView):
    required_perms = ("monetization.approve_customer_merge",)

    @extend_schema(request=ReasonIn, responses=CustomerMergeOut, tags=["staff"])
    def post(self, request, pk: int):
        body = ReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        merge = self.act(merges.customer_merge_get(pk), request.user, body.validated_data["reason"])
        return Response(CustomerMergeOut(merge).data)


class CustomerMergeApproveView(_Decision):
    def act(self, merge, user, reason):
        return merges.customer_merge_approve(merge=merge, approved_by=user, reason=reason)


class CustomerMergeRejectView(_Decision):
    def act(self, merge, user, reason):
        return merges.customer_merge_reject(merge=merge, rejected_by=user, reason=reason)

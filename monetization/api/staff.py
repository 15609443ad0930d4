"""Staff API: the support console's actions under /api/v1/staff/, through the same services as the admin.

Session-authenticated staff only (API keys are refused by StaffPermission);
each view names the Django permissions it needs in ``required_perms`` and the
service checks them again. Refund creation takes an ``Idempotency-Key``.
The money core's part: customers, refunds, webhook replay, the audit trail. Apps above it add
their endpoints (subscriptions: grants and subscription actions) and their parts
of the customer summary (:data:`customer_summary_parts`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import django_filters
from django.shortcuts import get_object_or_404
from djmoney.money import Money
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.idempotency import idempotent
from monetization.api.permissions import StaffPermission
from monetization.models import AuditEvent, Customer, Payment, Refund, WebhookEvent
from monetization.registry import Registry
from monetization.selectors_support import customer_overview
from monetization.services import refunds as refund_services
from monetization.services.refund_preview import refund_preview
from monetization.webhook_queue import webhook_event_replay

STAFF_AUTH = [SessionAuthentication]


class StaffView(APIView):
    authentication_classes = STAFF_AUTH
    permission_classes = [StaffPermission]
    required_perms: tuple[str, ...] = ()


class MoneyOut(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=19, decimal_places=4, source="amount")
    currency = serializers.CharField(source="currency.code")


class RefundOut(serializers.ModelSerializer):
    amount = serializers.DecimalField(max_digits=19, decimal_places=4, source="amount.amount")
    currency = serializers.CharField(source="amount.currency.code")

    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "customer",
            "amount",
            "currency",
            "reason_code",
            "note",
            "revoke_access",
            "status",
            "requested_by",
            "approved_by",
            "decided_reason",
            "provider_refund_id",
            "failure_code",
            "attempts",
            "requested_at",
            "decided_at",
            "completed_at",
        ]


class AuditEventOut(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor",
            "actor_kind",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "customer",
            "before",
            "after",
            "reason",
            "request_id",
        ]


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField()


@dataclass(frozen=True)
class CustomerSummaryPart:
    """What an app adds to ``GET staff/customers/{external_id}``: ``load(customer)`` reads its data
    (bounded queries), ``fields()`` the serializer fields that render it, each with ``source``
    relative to that data."""

    load: Callable[[Customer], Any]
    fields: Callable[[], dict[str, serializers.Field]]


# customer_summary_parts.register(name, CustomerSummaryPart(...)) from AppConfig.ready().
customer_summary_parts: Registry[CustomerSummaryPart] = Registry("customer summary part")


@dataclass
class CustomerSummary:
    overview: Any
    parts: dict[str, Any]


# --- customers -----------------------------------------------------------------


class CustomerSummaryView(StaffView):
    required_perms = ("monetization.view_customer",)

    class StaffPaymentSerializer(serializers.ModelSerializer):
        amount = serializers.DecimalField(max_digits=19, decimal_places=4, source="amount.amount")
        refunded = serializers.DecimalField(max_digits=19, decimal_places=4, source="refunded.amount")
        currency = serializers.CharField(source="amount.currency.code")

        class Meta:
            model = Payment
            fields = ["id", "provider", "provider_reference", "kind", "amount", "refunded", "currency", "status"]

    class StaffCustomerSummarySerializer(serializers.Serializer):
        id = serializers.IntegerField(source="overview.customer.id")
        external_id = serializers.CharField(source="overview.customer.external_id")
        handle = serializers.CharField(source="overview.customer.handle")
        email = serializers.CharField(source="overview.customer.email")
        country = serializers.CharField(source="overview.customer.country")
        identities = serializers.SerializerMethodField()
        payments = serializers.SerializerMethodField()
        refunds = RefundOut(many=True, source="overview.refunds")

        def get_fields(self):
            fields = super().get_fields()
            for name, part in customer_summary_parts.items():
                for field_name, field in part.fields().items():
                    field.source = f"parts.{name}.{field.source or field_name}"
                    fields[field_name] = field
            return fields

        def get_identities(self, obj) -> list[dict]:
            return [{"provider": i.provider, "kind": i.kind, "value": i.value} for i in obj.overview.identities]

        def get_payments(self, obj) -> list[dict]:
            return CustomerSummaryView.StaffPaymentSerializer(obj.overview.payments, many=True).data

    @extend_schema(responses=StaffCustomerSummarySerializer, operation_id="staff_customer_summary", tags=["staff"])
    def get(self, request, external_id: str):
        customer = get_object_or_404(Customer, external_id=external_id)
        summary = CustomerSummary(
            overview=customer_overview(customer, panels=()),
            parts={name: part.load(customer) for name, part in customer_summary_parts.items()},
        )
        return Response(self.StaffCustomerSummarySerializer(summary).data)


# --- refunds -------------------------------------------------------------------


class IdPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class RefundListCreateView(StaffView, generics.GenericAPIView):
    pagination_class = IdPagination
    serializer_class = RefundOut
    queryset = Refund.objects.none()

    @property
    def required_perms(self):
        if self.request.method == "POST":
            return ("monetization.request_refund",)
        return ("monetization.view_refund",)

    class RefundFilterSerializer(serializers.Serializer):
        """A filter value that cannot match (``?status=AAA``, ``?customer=x``) is 400, not an empty page."""

        status = serializers.ChoiceField(Refund.Status.choices, required=False)
        customer = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        payment = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    class RefundCreateInputSerializer(serializers.Serializer):
        payment_id = serializers.IntegerField()
        amount = serializers.DecimalField(max_digits=19, decimal_places=4, required=False, help_text="Blank: full")
        reason_code = serializers.ChoiceField(Refund.Reason.choices)
        note = serializers.CharField(required=False, allow_blank=True, default="")
        revoke_access = serializers.ChoiceField(Refund.RevokeAccess.choices, default=Refund.RevokeAccess.NONE)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Refund.Status.values),
            OpenApiParameter("customer", int, description="customer id"),
            OpenApiParameter("payment", int, description="payment id"),
        ],
        responses=RefundOut(many=True),
        operation_id="staff_refunds_list",
        tags=["staff"],
    )
    def get(self, request):
        filters = self.RefundFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = Refund.objects.filter(**filters.validated_data)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(RefundOut(page, many=True).data)

    @extend_schema(
        request=RefundCreateInputSerializer,
        responses={201: RefundOut},
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True),
        ],
        operation_id="staff_refunds_create",
        tags=["staff"],
    )
    @idempotent("staff.refunds.create")
    def post(self, request):
        data = self.RefundCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment = get_object_or_404(Payment, pk=data.validated_data["payment_id"])
        amount = data.validated_data.get("amount")
        if amount is None:
            amount = refund_services.payment_refundable(payment).amount
        refund = refund_services.refund_request(
            payment=payment,
            amount=Money(Decimal(amount), str(payment.amount.currency)),
            reason_code=data.validated_data["reason_code"],
            note=data.validated_data["note"],
            revoke_access=data.validated_data["revoke_access"],
            requested_by=request.user,
        )
        return Response(RefundOut(refund).data, status=status.HTTP_201_CREATED)


class RefundPreviewView(StaffView):
    """What a refund would do (money, access, seats, creator clawback), before it is requested. Writes nothing."""

    required_perms = ("monetization.request_refund",)

    class RefundPreviewInputSerializer(serializers.Serializer):
        payment_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        amount = serializers.DecimalField(max_digits=19, decimal_places=4, required=False, help_text="Blank: full")
        revoke_access = serializers.ChoiceField(Refund.RevokeAccess.choices, default=Refund.RevokeAccess.NONE)

    class LedgerLineOut(serializers.Serializer):
        account = serializers.CharField()
        amount = serializers.DecimalField(max_digits=19, decimal_places=4)

    class RefundPreviewOut(serializers.Serializer):
        payment = serializers.IntegerField()
        amount = serializers.DecimalField(max_digits=19, decimal_places=4)
        currency = serializers.CharField()
        refundable = serializers.DecimalField(max_digits=19, decimal_places=4)
        revoke_access = serializers.ChoiceField(Refund.RevokeAccess.choices)
        needs_approval = serializers.BooleanField()
        approval_reason = serializers.CharField(allow_blank=True)
        tax_reversed = serializers.DecimalField(max_digits=19, decimal_places=4)
        commission_reversed = serializers.DecimalField(max_digits=19, decimal_places=4)
        fee_reversed = serializers.DecimalField(max_digits=19, decimal_places=4)
        fee_kept = serializers.DecimalField(max_digits=19, decimal_places=4)
        cash_out = serializers.DecimalField(max_digits=19, decimal_places=4)
        ledger = serializers.ListField(child=serializers.DictField())
        effects = serializers.DictField(
            child=serializers.DictField(),
            help_text="Per app: subscription (transition, entitlements ending), organization (credit note, "
            "seats losing access, badges ending), creator (share clawed back)",
        )

    @extend_schema(
        request=RefundPreviewInputSerializer,
        responses=RefundPreviewOut,
        operation_id="staff_refunds_preview",
        tags=["staff"],
    )
    def post(self, request):
        data = self.RefundPreviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment = get_object_or_404(Payment, pk=data.validated_data["payment_id"])
        amount = data.validated_data.get("amount")
        if amount is None:
            amount = refund_services.payment_refundable(payment).amount
        preview = refund_preview(
            payment=payment,
            amount=Money(Decimal(amount), str(payment.amount.currency)),
            revoke_access=data.validated_data["revoke_access"],
            user=request.user,
        )
        return Response(preview.as_dict())


class _RefundAction(StaffView):
    """Approve / reject / retry. Approve and retry move money: an optional Idempotency-Key replays the answer."""

    @extend_schema(
        request=ReasonIn,
        responses=RefundOut,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        tags=["staff"],
    )
    @idempotent("staff.refunds.decide", required=False)
    def post(self, request, pk: int):
        body = ReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        refund = refund_services.refund_get(pk)
        refund = self.act(refund, request.user, body.validated_data["reason"])
        return Response(RefundOut(refund).data)


class RefundApproveView(_RefundAction):
    required_perms = ("monetization.approve_refund",)

    def act(self, refund, user, reason):
        return refund_services.refund_approve(refund=refund, approved_by=user, reason=reason)


class RefundRejectView(_RefundAction):
    required_perms = ("monetization.approve_refund",)

    def act(self, refund, user, reason):
        return refund_services.refund_reject(refund=refund, rejected_by=user, reason=reason)


class RefundRetryView(_RefundAction):
    required_perms = ("monetization.request_refund",)

    def act(self, refund, user, reason):
        return refund_services.refund_retry(refund=refund, actor=user, reason=reason)


# --- audit trail (read-only) -----------------------------------------------------


class AuditEventFilter(django_filters.FilterSet):
    class Meta:
        model = AuditEvent
        fields = ["actor", "actor_kind", "object_type", "object_id", "action", "customer"]


class AuditPagination(CursorPagination):
    ordering = ("-occurred_at", "-id")
    page_size = 100


class AuditEventListView(generics.ListAPIView):
    """The immutable audit trail. GET only: PUT, PATCH and DELETE are 405 for everyone, superusers included."""

    authentication_classes = STAFF_AUTH
    permission_classes = [StaffPermission]
    required_perms = ("monetization.view_auditevent",)
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventOut
    filterset_class = AuditEventFilter
    pagination_class = AuditPagination


class AuditEventDetailView(generics.RetrieveAPIView):
    authentication_classes = STAFF_AUTH
    permission_classes = [StaffPermission]
    required_perms = ("monetization.view_auditevent",)
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventOut


# --- webhook inbox -----------------------------------------------------------------


class WebhookEventOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookEvent
        fields = ["id", "provider", "event_id", "event_type", "status", "attempts", "last_error", "note"]


class WebhookEventReplayView(StaffView):
    """Apply a failed (or stuck) event again, on a worker, with a fresh budget of attempts (the admin's Replay)."""

    required_perms = ("monetization.replay_webhookevent",)

    @extend_schema(
        request=ReasonIn, responses=WebhookEventOut, operation_id="staff_webhook_events_replay", tags=["staff"]
    )
    def post(self, request, pk: int):
        body = ReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        event = get_object_or_404(WebhookEvent, pk=pk)
        event = webhook_event_replay(event=event, user=request.user, reason=body.validated_data["reason"])
        return Response(WebhookEventOut(event).data)

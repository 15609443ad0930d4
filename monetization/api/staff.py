"""Staff API: the support console's actions under /api/v1/staff/, through the same services as the admin.

Session-authenticated staff only (API keys are refused by StaffPermission);
each view names the Django permissions it needs in ``required_perms`` and the
service checks them again. Refund creation takes an ``Idempotency-Key``.
"""

from __future__ import annotations

from decimal import Decimal

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
from monetization.models import AuditEvent, Customer, Payment, Refund
from monetization.selectors_support import customer_overview
from monetization.services import refunds as refund_services
from subscriptions.models import Entitlement, Grant, Product, Subscription
from subscriptions.services import actions

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


class GrantOut(serializers.ModelSerializer):
    class Meta:
        model = Grant
        fields = [
            "id",
            "customer",
            "entitlement",
            "product",
            "starts_at",
            "ends_at",
            "reason",
            "granted_by",
            "revoked_at",
            "revoked_by",
            "revoke_reason",
        ]


class SubscriptionOut(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = [
            "id",
            "customer",
            "plan",
            "platform",
            "provider",
            "provider_subscription_id",
            "state",
            "current_period_start",
            "current_period_end",
            "auto_renew",
            "cancel_reason",
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
        id = serializers.IntegerField(source="customer.id")
        external_id = serializers.CharField(source="customer.external_id")
        handle = serializers.CharField(source="customer.handle")
        email = serializers.CharField(source="customer.email")
        country = serializers.CharField(source="customer.country")
        identities = serializers.SerializerMethodField()
        subscriptions = SubscriptionOut(many=True)
        entitlements = serializers.SerializerMethodField()
        payments = serializers.SerializerMethodField()
        refunds = RefundOut(many=True)
        grants = GrantOut(many=True)

        def get_identities(self, obj) -> list[dict]:
            return [{"provider": i.provider, "kind": i.kind, "value": i.value} for i in obj.identities]

        def get_entitlements(self, obj) -> list[dict]:
            return [e.as_dict() for e in obj.entitlements]

        def get_payments(self, obj) -> list[dict]:
            return CustomerSummaryView.StaffPaymentSerializer(obj.payments, many=True).data

    @extend_schema(responses=StaffCustomerSummarySerializer, operation_id="staff_customer_summary", tags=["staff"])
    def get(self, request, external_id: str):
        customer = get_object_or_404(Customer, external_id=external_id)
        return Response(self.StaffCustomerSummarySerializer(customer_overview(customer)).data)


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

    class RefundCreateInputSerializer(serializers.Serializer):
        payment_id = serializers.IntegerField()
        amount = serializers.DecimalField(max_digits=19, decimal_places=4, required=False, help_text="Blank: full")
        reason_code = serializers.ChoiceField(Refund.Reason.choices)
        note = serializers.CharField(required=False, allow_blank=True, default="")
        revoke_access = serializers.ChoiceField(Refund.RevokeAccess.choices, default=Refund.RevokeAccess.NONE)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Refund.Status.values),
            OpenApiParameter("customer", int),
            OpenApiParameter("payment", int),
        ],
        responses=RefundOut(many=True),
        operation_id="staff_refunds_list",
        tags=["staff"],
    )
    def get(self, request):
        qs = Refund.objects.all()
        for name in ("status", "customer", "payment"):
            value = request.query_params.get(name)
            if value:
                qs = qs.filter(**{name: value})
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


# --- grants --------------------------------------------------------------------


class GrantCreateView(StaffView):
    required_perms = ("subscriptions.grant_entitlement",)

    class GrantCreateInputSerializer(serializers.Serializer):
        customer = serializers.CharField(help_text="external id")
        entitlement = serializers.CharField(required=False, help_text="entitlement key")
        product = serializers.CharField(required=False, help_text="product code")
        days = serializers.IntegerField(required=False, min_value=1)
        until = serializers.DateTimeField(required=False)
        reason = serializers.CharField()

    @extend_schema(
        request=GrantCreateInputSerializer,
        responses={201: GrantOut},
        operation_id="staff_grants_create",
        tags=["staff"],
    )
    def post(self, request):
        data = self.GrantCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        customer = get_object_or_404(Customer, external_id=v["customer"])
        entitlement = get_object_or_404(Entitlement, key=v["entitlement"]) if v.get("entitlement") else None
        product = get_object_or_404(Product, code=v["product"]) if v.get("product") else None
        grant = actions.staff_grant_create(
            customer=customer,
            user=request.user,
            reason=v["reason"],
            entitlement=entitlement,
            product=product,
            days=v.get("days"),
            until=v.get("until"),
        )
        return Response(GrantOut(grant).data, status=status.HTTP_201_CREATED)


class GrantRevokeView(StaffView):
    required_perms = ("subscriptions.revoke_grant",)

    @extend_schema(request=ReasonIn, responses=GrantOut, operation_id="staff_grants_revoke", tags=["staff"])
    def post(self, request, pk: int):
        body = ReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        grant = get_object_or_404(Grant, pk=pk)
        grant = actions.staff_grant_revoke(grant=grant, user=request.user, reason=body.validated_data["reason"])
        return Response(GrantOut(grant).data)


# --- subscriptions -------------------------------------------------------------


class SubscriptionActionView(StaffView):
    """cancel (at_period_end, default true) | extend (days) | pause | resume | revoke."""

    PERMS = {
        "cancel": actions.PERM_CANCEL,
        "extend": actions.PERM_EXTEND,
        "pause": actions.PERM_PAUSE,
        "resume": actions.PERM_PAUSE,
        "revoke": actions.PERM_REVOKE,
    }

    class SubscriptionActionInputSerializer(serializers.Serializer):
        reason = serializers.CharField()
        at_period_end = serializers.BooleanField(required=False, default=True)
        days = serializers.IntegerField(required=False)

    @property
    def required_perms(self):
        return (self.PERMS[self.kwargs["action"]],)

    @extend_schema(request=SubscriptionActionInputSerializer, responses=SubscriptionOut, tags=["staff"])
    def post(self, request, pk: int, action: str):
        data = self.SubscriptionActionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        sub = get_object_or_404(Subscription, pk=pk)
        common = {"subscription": sub, "user": request.user, "reason": v["reason"]}
        if action == "cancel":
            sub = actions.subscription_cancel(**common, at_period_end=v["at_period_end"])
        elif action == "extend":
            if v.get("days") is None:
                raise serializers.ValidationError({"days": ["Required."]})
            sub = actions.subscription_extend(**common, days=v["days"])
        elif action == "pause":
            sub = actions.subscription_pause(**common)
        elif action == "resume":
            sub = actions.subscription_resume(**common)
        else:
            sub = actions.subscription_revoke(**common)
        return Response(SubscriptionOut(sub).data)


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

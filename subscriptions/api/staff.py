"""Staff API of subscriptions: grants and the subscription actions, under /api/v1/staff/.

The same services as the support console; the permissions and the session-only
authentication of the money core's staff API (``StaffView``). Also this app's part of
the staff customer summary (subscriptions, active entitlements, grants).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from monetization.api.staff import CustomerSummaryPart, ReasonIn, StaffView
from monetization.models import Customer
from subscriptions.models import Entitlement, Grant, Product, Subscription
from subscriptions.selectors import customer_subscriptions
from subscriptions.services import actions


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


@extend_schema_field(serializers.ListField(child=serializers.DictField()))
class EntitlementsOut(serializers.Field):
    """Active entitlements as the entitlement API renders them (key, source, source_id, expires_at)."""

    def to_representation(self, value) -> list[dict]:
        return [e.as_dict() for e in value]


def _summary_fields() -> dict[str, serializers.Field]:
    return {
        "subscriptions": SubscriptionOut(many=True),
        "entitlements": EntitlementsOut(),
        "grants": GrantOut(many=True),
    }


CUSTOMER_SUMMARY = CustomerSummaryPart(load=customer_subscriptions, fields=_summary_fields)


# --- grants --------------------------------------------------------------------


class GrantCreateView(StaffView):
    required_perms = ("subscriptions.grant_entitlement",)

    class GrantCreateInputSerializer(serializers.Serializer):
        customer = serializers.CharField(help_text="external id")
        entitlement = serializers.CharField(required=False, help_text="entitlement key")
        product = serializers.CharField(required=False, help_text="product code")
        days = serializers.IntegerField(required=False, min_value=1)
        until = serializers.DateTimeField(required=False)
        open_ended = serializers.BooleanField(
            required=False, default=False, help_text="no end: only when asked for by name (else days or until)"
        )
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
            open_ended=v["open_ended"],
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
        if action != "revoke":  # the provider's idempotency key follows the client's own key for this action
            common["action_id"] = request.headers.get("Idempotency-Key", "").strip()
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

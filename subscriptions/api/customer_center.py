"""The customer center of a client app: the signed-in customer's own subscriptions and what they can do.

The app acts for its user with its API key and ``X-Acting-Customer`` (monetization.api.acting), like
the org and creator endpoints. ``GET customer-center/subscriptions`` (scope ``subscriptions:read``);
``POST customer-center/subscriptions/{id}/cancel``, ``.../{id}/switch-plan`` and
``POST customer-center/billing-portal`` (scope ``subscriptions:write``, ``Idempotency-Key`` honoured:
a retry replays the first answer). Thin: the rules are subscriptions.services.self_service's.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.acting import ACTING_CUSTOMER_PARAMETER, acting_customer, acting_label
from monetization.api.idempotency import idempotent
from monetization.api.permissions import require_scope
from subscriptions.services import self_service

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="A unique value per intended action: a retry with it replays the first answer.",
)


class CenterSubscriptionOut(serializers.Serializer):
    id = serializers.IntegerField(source="subscription.id")
    platform = serializers.CharField(source="subscription.platform")
    provider = serializers.CharField(source="subscription.provider")
    plan = serializers.CharField(source="subscription.plan.code")
    product = serializers.CharField(source="subscription.plan.product.code")
    status = serializers.CharField(source="subscription.state")
    auto_renew = serializers.BooleanField(source="subscription.auto_renew")
    next_renewal = serializers.DateTimeField(allow_null=True)
    access_until = serializers.DateTimeField(allow_null=True)
    self_service = serializers.BooleanField(help_text="Cancel and switch plan here (web subscriptions)")
    manage_url = serializers.CharField(allow_blank=True, help_text="The store's manage-subscription page")


def _center_entry(sub) -> dict:
    """One subscription as the list shows it, after an action (read again: its state just changed)."""
    entries = [e for e in self_service.customer_center_subscriptions(sub.customer) if e.subscription.pk == sub.pk]
    if entries:
        return CenterSubscriptionOut(entries[0]).data
    return {"id": sub.pk, "status": sub.state}


class CustomerCenterSubscriptionsView(APIView):
    permission_classes = [require_scope("subscriptions:read")]

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER],
        responses={200: CenterSubscriptionOut(many=True)},
        operation_id="customer_center_subscriptions",
    )
    def get(self, request):
        customer = acting_customer(request)
        return Response(CenterSubscriptionOut(self_service.customer_center_subscriptions(customer), many=True).data)


class CustomerCenterCancelView(APIView):
    permission_classes = [require_scope("subscriptions:write")]

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={200: CenterSubscriptionOut},
        operation_id="customer_center_subscription_cancel",
        description="Cancel a web subscription at the period end. A store subscription is 409 "
        "store_managed_subscription with the store's manage_url.",
    )
    @idempotent("client.customer_center.cancel", required=False)
    def post(self, request, pk: int):
        customer = acting_customer(request)
        sub = self_service.customer_subscription_cancel(
            customer=customer,
            subscription_id=pk,
            client_label=acting_label(request, customer),
            action_id=request.headers.get("Idempotency-Key", "").strip(),
        )
        return Response(_center_entry(sub))


class CustomerCenterSwitchPlanView(APIView):
    permission_classes = [require_scope("subscriptions:write")]

    class SwitchPlanIn(serializers.Serializer):
        plan = serializers.CharField(max_length=64, help_text="The code of the plan to switch to (the catalog's)")

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=SwitchPlanIn,
        responses={200: CenterSubscriptionOut},
        operation_id="customer_center_subscription_switch_plan",
        description="Switch a web subscription to another plan sold on the web; Stripe prorates on the next "
        "invoice. 409 plan_not_switchable, or store_managed_subscription with the store's manage_url.",
    )
    @idempotent("client.customer_center.switch_plan", required=False)
    def post(self, request, pk: int):
        customer = acting_customer(request)
        data = self.SwitchPlanIn(data=request.data)
        data.is_valid(raise_exception=True)
        sub = self_service.customer_subscription_switch_plan(
            customer=customer,
            subscription_id=pk,
            plan_code=data.validated_data["plan"],
            client_label=acting_label(request, customer),
            action_id=request.headers.get("Idempotency-Key", "").strip(),
        )
        return Response(_center_entry(sub))


class CustomerCenterBillingPortalView(APIView):
    permission_classes = [require_scope("subscriptions:write")]

    class BillingPortalIn(serializers.Serializer):
        return_url = serializers.URLField(max_length=500, help_text="Where Stripe sends the customer back (https)")

        def validate_return_url(self, value: str) -> str:
            if not value.startswith("https://"):
                raise serializers.ValidationError("The return URL must be https.")
            return value

    class BillingPortalOut(serializers.Serializer):
        id = serializers.CharField()
        url = serializers.URLField()
        return_url = serializers.URLField()

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=BillingPortalIn,
        responses={200: BillingPortalOut},
        operation_id="customer_center_billing_portal",
        description="A Stripe Billing Portal session to update the card (409 billing_account_missing "
        "for a customer with no web billing account).",
    )
    @idempotent("client.customer_center.billing_portal", required=False)
    def post(self, request):
        customer = acting_customer(request)
        data = self.BillingPortalIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = self_service.customer_billing_portal(
            customer=customer,
            return_url=data.validated_data["return_url"],
            client_label=acting_label(request, customer),
            action_id=request.headers.get("Idempotency-Key", "").strip(),
        )
        return Response(self.BillingPortalOut(session).data)

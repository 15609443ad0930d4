"""Client endpoints for growth: a customer's experiment arm, and redeeming a promo code at checkout."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.idempotency import idempotent
from monetization.api.permissions import require_scope
from subscriptions.services.experiments import experiment_expose
from subscriptions.services.promo_codes import promo_code_redeem


class ExperimentArmView(APIView):
    """The arm this customer sees (assigned and recorded on first call, the same arm ever after)."""

    permission_classes = [require_scope("catalog:read")]

    class ExperimentArmSerializer(serializers.Serializer):
        experiment = serializers.CharField()
        state = serializers.CharField()
        arm = serializers.CharField(allow_null=True)
        price = serializers.DictField(allow_null=True)
        offering = serializers.DictField(allow_null=True)

    @extend_schema(responses=ExperimentArmSerializer, operation_id="customer_experiment_arm")
    def get(self, request, external_id: str, key: str):
        exposure = experiment_expose(experiment_key=key, customer_external_id=external_id)
        arm = exposure.arm
        price = None
        if arm is not None and arm.price is not None:
            price = {
                "plan": arm.price.plan.code,
                "country": arm.price.country,
                "amount": str(arm.price.amount.amount),
                "currency": arm.price.amount.currency.code,
            }
        return Response(
            {
                "experiment": exposure.experiment.key,
                "state": exposure.experiment.state,
                "arm": arm.key if arm is not None else None,
                "price": price,
                "offering": (arm.offering or None) if arm is not None else None,
            }
        )


class PromoCodeRedeemView(APIView):
    """Checkout redeems a web promo code for a customer (an Idempotency-Key replays the first answer)."""

    permission_classes = [require_scope("purchases:write")]

    class PromoRedeemInputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)
        customer = serializers.CharField(max_length=64, help_text="The customer's external id.")
        country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False, allow_blank=True)

    class PromoRedemptionSerializer(serializers.Serializer):
        code = serializers.CharField(source="promo_code.code")
        customer = serializers.CharField(source="customer.external_id")
        country = serializers.CharField()
        stripe_promotion_code_id = serializers.CharField(source="promo_code.stripe_promotion_code_id")
        redeemed_at = serializers.DateTimeField()

    @extend_schema(
        request=PromoRedeemInputSerializer,
        responses={200: PromoRedemptionSerializer, 201: PromoRedemptionSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        operation_id="promo_code_redeem",
    )
    @idempotent("promo_codes.redeem", required=False)
    def post(self, request):
        data = self.PromoRedeemInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = promo_code_redeem(
            code=v["code"],
            customer_external_id=v["customer"],
            country=v.get("country", ""),
            client_label=request.user.get_username(),
        )
        return Response(
            self.PromoRedemptionSerializer(result.redemption).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.permissions import require_scope
from subscriptions.selectors import subscription_for_output
from subscriptions.services.purchases import purchase_submit


class PurchaseView(APIView):
    """A client app submits a purchase (App Store JWS, Play token, Stripe subscription id) for validation."""

    permission_classes = [require_scope("purchases:write")]

    class PurchaseInputSerializer(serializers.Serializer):
        platform = serializers.ChoiceField(["ios", "android", "web"])
        customer = serializers.CharField(max_length=64, help_text="The customer's external id.")
        signed_transaction = serializers.CharField(required=False, allow_blank=True, max_length=20000)
        signed_renewal_info = serializers.CharField(required=False, allow_blank=True, max_length=20000)
        purchase_token = serializers.CharField(required=False, allow_blank=True, max_length=512)
        product_id = serializers.CharField(required=False, allow_blank=True, max_length=128)
        stripe_subscription_id = serializers.CharField(required=False, allow_blank=True, max_length=255)

    class PurchaseOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        customer = serializers.CharField(source="customer.external_id")
        plan = serializers.CharField(source="plan.code")
        platform = serializers.CharField()
        provider = serializers.CharField()
        provider_subscription_id = serializers.CharField()
        state = serializers.CharField()
        current_period_end = serializers.DateTimeField(allow_null=True)
        auto_renew = serializers.BooleanField()

    @extend_schema(
        request=PurchaseInputSerializer, responses={200: PurchaseOutputSerializer, 201: PurchaseOutputSerializer}
    )
    def post(self, request):
        data = self.PurchaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = purchase_submit(
            platform=v["platform"],
            customer_external_id=v["customer"],
            signed_transaction=v.get("signed_transaction", ""),
            signed_renewal_info=v.get("signed_renewal_info", ""),
            purchase_token=v.get("purchase_token", ""),
            product_id=v.get("product_id", ""),
            stripe_subscription_id=v.get("stripe_subscription_id", ""),
            client_label=request.user.get_username(),
        )
        # Read again as it stands after the purchase, with what the answer shows of it.
        sub = subscription_for_output(result.subscription.pk)
        return Response(
            self.PurchaseOutputSerializer(sub).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

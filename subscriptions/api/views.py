from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.permissions import require_scope
from monetization.errors import NotFound
from monetization.models import Customer
from monetization.services.cache_invalidation import cache_trusted
from subscriptions import selectors
from subscriptions.entitlements import (
    cache_entitlements,
    cached_entitlements_json,
    entitlements_body,
    entitlements_cache_key,
    resolve_entitlements,
)
from subscriptions.models import Platform


class EntitlementsView(APIView):
    """The hot path: what a customer may use now. Served from cache; a miss costs one query per source."""

    permission_classes = [require_scope("entitlements:read")]
    response_content_type = "application/json"  # of the cached body (also served by api/fast_path.py)

    class OutputSerializer(serializers.Serializer):
        customer = serializers.CharField()
        entitlements = inline_serializer(
            "ActiveEntitlement",
            {
                "key": serializers.CharField(),
                "source": serializers.ChoiceField(["subscription", "grant", "organization"]),
                "source_id": serializers.CharField(),
                "expires_at": serializers.DateTimeField(allow_null=True),
            },
            many=True,
        )

    def throttle_prefetch_keys(self, request):
        # Read the cached entitlements in the throttle's Redis round trip (one trip fewer).
        return [entitlements_cache_key(self.kwargs["external_id"])]

    @extend_schema(responses=OutputSerializer, operation_id="customer_entitlements")
    def get(self, request, external_id: str):
        if hasattr(request, "cache_prefetched"):
            body = request.cache_prefetched.get(entitlements_cache_key(external_id)) if cache_trusted() else None
        else:
            body = cached_entitlements_json(external_id)
        if body is None:
            customer_id = Customer.objects.filter(external_id=external_id).values_list("id", flat=True).first()
            if customer_id is None:
                raise NotFound(f"No customer with external id '{external_id}'.")
            entitlements = resolve_entitlements(customer_id)
            body = entitlements_body(external_id, entitlements)
            cache_entitlements(external_id, entitlements, body)
        # Bypass serializer and renderer: the body is already JSON (this is the hottest endpoint).
        return HttpResponse(body, content_type=self.response_content_type)


class CatalogView(APIView):
    permission_classes = [require_scope("catalog:read")]

    class InputSerializer(serializers.Serializer):
        platform = serializers.CharField()
        country = serializers.CharField()

    class MoneySerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=14, decimal_places=2, source="amount.amount")
        currency = serializers.CharField(source="amount.currency.code")

    class PlanSerializer(serializers.Serializer):
        code = serializers.CharField(source="plan.code")
        interval = serializers.CharField(source="plan.interval")
        interval_count = serializers.IntegerField(source="plan.interval_count")
        trial_days = serializers.IntegerField(source="plan.trial_days")
        store_product_id = serializers.CharField(source="sku.store_product_id")
        base_plan_id = serializers.CharField(source="sku.base_plan_id")
        price = serializers.SerializerMethodField()
        seat_price = serializers.SerializerMethodField()

        def _money(self, price):
            if price is None:
                return None
            return {"amount": str(price.amount.amount), "currency": price.amount.currency.code}

        def get_price(self, obj) -> dict | None:
            return self._money(obj.price)

        def get_seat_price(self, obj) -> dict | None:
            return self._money(obj.seat_price)

    class ProductSerializer(serializers.Serializer):
        code = serializers.CharField(source="product.code")
        name = serializers.CharField(source="product.name")
        kind = serializers.CharField(source="product.kind")
        entitlements = serializers.ListField(source="product.entitlement_keys", child=serializers.CharField())
        plans = serializers.SerializerMethodField()

        def get_plans(self, obj) -> list:
            return CatalogView.PlanSerializer(obj.plans, many=True).data

    @extend_schema(
        parameters=[
            OpenApiParameter("platform", enum=Platform.values, required=True),
            OpenApiParameter(
                "country",
                {"type": "string", "pattern": "^[A-Za-z]{2}$"},
                description="ISO 3166-1 alpha-2 (a code with no prices is 400 unknown_country)",
                required=True,
            ),
        ],
        responses=inline_serializer(
            "Catalog",
            {
                "platform": serializers.CharField(),
                "country": serializers.CharField(),
                "products": ProductSerializer(many=True),
            },
        ),
        operation_id="catalog",
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        products = selectors.catalog_for(
            platform=params.validated_data["platform"], country=params.validated_data["country"]
        )
        return Response(
            {
                "platform": params.validated_data["platform"],
                "country": params.validated_data["country"].upper(),
                "products": self.ProductSerializer(products, many=True).data,
            }
        )

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.permissions import require_scope
from monetization.errors import NotFound
from monetization.services.cache_invalidation import cache_trusted
from subscriptions import selectors
from subscriptions.entitlements import (
    cache_entitlements,
    cached_entitlements_json,
    entitlements_body,
    entitlements_cache_key,
    resolve_entitlements_by_external_id,
)
from subscriptions.models import Platform
from subscriptions.selectors_offers import catalog_offers_attach


class EntitlementsView(APIView):
    """The hot path: what a customer may use now. Served from cache; a miss costs one query (every source)."""

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
            entitlements = resolve_entitlements_by_external_id(external_id)
            if entitlements is None:
                raise NotFound(f"No customer with external id '{external_id}'.")
            body = entitlements_body(external_id, entitlements)
            cache_entitlements(external_id, entitlements, body)
        # Bypass serializer and renderer: the body is already JSON (this is the hottest endpoint).
        return HttpResponse(body, content_type=self.response_content_type)


class CatalogView(APIView):
    permission_classes = [require_scope("catalog:read")]

    class InputSerializer(serializers.Serializer):
        platform = serializers.CharField()
        country = serializers.CharField()
        customer = serializers.CharField(required=False, max_length=64)

    class MoneySerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=14, decimal_places=2, source="amount.amount")
        currency = serializers.CharField(source="amount.currency.code")

    class IntroductoryOfferSerializer(serializers.Serializer):
        payment_mode = serializers.CharField()
        duration = serializers.IntegerField()
        duration_unit = serializers.CharField()
        price = serializers.SerializerMethodField()
        play_offer_id = serializers.CharField()
        play_offer_tags = serializers.ListField(child=serializers.CharField())
        stripe_coupon_id = serializers.CharField()

        def get_price(self, obj) -> dict | None:
            if obj.price is None:
                return None
            return {"amount": str(obj.price.amount), "currency": obj.price.currency.code}

    class PlanSerializer(serializers.Serializer):
        code = serializers.CharField(source="plan.code")
        interval = serializers.CharField(source="plan.interval")
        interval_count = serializers.IntegerField(source="plan.interval_count")
        trial_days = serializers.SerializerMethodField()
        store_product_id = serializers.CharField(source="sku.store_product_id")
        base_plan_id = serializers.CharField(source="sku.base_plan_id")
        price = serializers.SerializerMethodField()
        seat_price = serializers.SerializerMethodField()
        introductory_offer = serializers.SerializerMethodField()
        introductory_offer_eligible = serializers.BooleanField(allow_null=True)

        def get_trial_days(self, obj) -> int:
            # The plan's own trial is an introductory offer too: not for a customer who used one.
            return 0 if obj.introductory_offer_eligible is False else obj.plan.trial_days

        def get_introductory_offer(self, obj) -> dict | None:
            if obj.introductory_offer is None:
                return None
            return CatalogView.IntroductoryOfferSerializer(obj.introductory_offer).data

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
            OpenApiParameter(
                "customer",
                str,
                description="The customer's external id: introductory offers only where they may take one",
                required=False,
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
        v = params.validated_data
        products = catalog_offers_attach(
            selectors.catalog_for(platform=v["platform"], country=v["country"]),
            platform=v["platform"],
            country=v["country"],
            customer_external_id=v.get("customer", ""),
        )
        return Response(
            {
                "platform": params.validated_data["platform"],
                "country": params.validated_data["country"].upper(),
                "products": self.ProductSerializer(products, many=True).data,
            }
        )

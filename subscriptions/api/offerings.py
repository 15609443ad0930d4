"""The paywall a client shows: ``GET /api/v1/offerings?platform=..&country=..&customer=..``."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from monetization.api.permissions import require_scope
from subscriptions.models import Platform
from subscriptions.services.offerings import offerings_body


class OfferingsView(APIView):
    """Cached per (platform, country, arm); the customer's arm is picked (and recorded) on first call."""

    permission_classes = [require_scope("catalog:read")]
    response_content_type = "application/json"

    class InputSerializer(serializers.Serializer):
        platform = serializers.CharField()
        country = serializers.CharField()
        customer = serializers.CharField(required=False, allow_blank=True, max_length=255)

    @extend_schema(
        parameters=[
            OpenApiParameter("platform", enum=Platform.values, required=True),
            OpenApiParameter("country", {"type": "string", "pattern": "^[A-Za-z]{2}$"}, required=True),
            OpenApiParameter(
                "customer",
                {"type": "string", "maxLength": 255},
                description="The customer's external id (places them in running experiments)",
            ),
        ],
        responses=inline_serializer(
            "Offerings",
            {
                "platform": serializers.CharField(),
                "country": serializers.CharField(),
                "offering": serializers.DictField(allow_null=True),
                "arms": serializers.ListField(child=serializers.CharField()),
                "packages": serializers.ListField(child=serializers.DictField()),
            },
        ),
        operation_id="offerings",
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        v = params.validated_data
        body = offerings_body(platform=v["platform"], country=v["country"], customer_external_id=v.get("customer", ""))
        # The body is JSON already (cached as bytes): no serializer, no renderer.
        return HttpResponse(body, content_type=self.response_content_type)

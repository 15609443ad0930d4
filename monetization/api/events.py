"""The outbox for consumers that pull: ``GET /api/v1/events?after=<cursor>``, and the catalogue."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.permissions import require_scope
from monetization.errors import InvalidInput
from monetization.event_catalogue import ENVELOPE_SCHEMA, catalogue_document
from monetization.outbox.delivery import entitlements_fill, event_envelope
from monetization.selectors_outbox import outbox_events_after


def as_openapi(schema):
    """The catalogue's JSON Schema as OpenAPI 3.0 states it: a type list with "null" is a ``nullable``
    type (3.0 has no type lists; the catalogue keeps JSON Schema's form for consumers who validate)."""
    if isinstance(schema, list):
        return [as_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    # "$schema" and "$id" name the JSON Schema dialect, which OpenAPI 3.0 does not accept.
    out = {key: as_openapi(value) for key, value in schema.items() if key not in ("$schema", "$id")}
    types = out.get("type")
    if isinstance(types, list):
        named = [t for t in types if t != "null"]
        out["type"] = named[0] if len(named) == 1 else named
        if "null" in types:
            out["nullable"] = True
    return out


PAGE_SCHEMA = as_openapi(
    {
        "type": "object",
        "required": ["events", "next"],
        "properties": {
            "events": {"type": "array", "items": ENVELOPE_SCHEMA},
            "next": {"type": ["string", "null"], "description": "Pass as `after` for the next page."},
            "has_more": {"type": "boolean"},
        },
    }
)


class EventsView(APIView):
    """Events in commit order after a cursor (the same envelope as the signed deliveries)."""

    permission_classes = [require_scope("events:read")]

    class InputSerializer(serializers.Serializer):
        after = serializers.CharField(required=False, allow_blank=True, max_length=48)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)

    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter("after", str, description="The `next` of the previous page; omit to start."),
            OpenApiParameter("limit", int, description="At most 1000 (default 100)."),
        ],
        responses={200: PAGE_SCHEMA},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        if not params.is_valid():
            raise InvalidInput("Bad query parameters.", extra={"fields": params.errors})
        limit = params.validated_data.get("limit", settings.OUTBOX_PULL_PAGE)
        events, next_cursor = outbox_events_after(cursor=params.validated_data.get("after"), limit=limit)
        entitlements_fill(events)
        return Response(
            {"events": [event_envelope(e) for e in events], "next": next_cursor, "has_more": len(events) == limit}
        )


class EventCatalogueView(APIView):
    """Every event type with its version and JSON schema (also the schema of each delivery's body)."""

    permission_classes = [require_scope("events:read")]

    @extend_schema(operation_id="events_catalogue", responses={200: {"type": "object"}})
    def get(self, request):
        return Response(catalogue_document())

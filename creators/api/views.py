"""Creators API.

- ``POST /api/v1/creators/engagement`` (scope ``engagement:write``): bulk engagement, body as
  JSON lines (``application/x-ndjson``) or a JSON array. Rows are validated one by one; the
  answer is ``{"accepted": n, "rejected_count": m, "rejected": [{"line", "code", "detail"}]}``
  and a rejected row changes nothing. Re-sending a (creator, day, source) replaces it.
- ``GET /api/v1/creators/me/earnings|payouts|eligibility`` (scope ``creators:read``): a client
  app acting for a creator names them with the header ``X-Acting-Customer: <external_id>``
  (monetization.api.acting; the platform account id of the signed-in creator, whom the app has
  authenticated); a customer with no creator account is 404 ``not_found``.
- ``POST /api/v1/creators/me/connect/onboarding-link`` (scope ``creators:write``), body
  ``{"refresh_url", "return_url"}`` (https): the creator's Stripe Express account (made once) and a
  fresh single-use link to Stripe's hosted onboarding, ``{"account", "url", "expires_at"}``; 409
  ``unsupported_by_provider`` when the payout provider has no hosted onboarding, 502
  ``provider_error`` when Stripe refuses.
"""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.acting import ACTING_CUSTOMER_PARAMETER, acting_customer
from monetization.api.permissions import require_scope
from monetization.errors import InvalidInput, NotFound
from monetization.models import AuditEvent

from .. import selectors
from ..models import CreatorAccount
from ..services.connect import creator_connect_onboarding_link
from ..services.engagement import engagement_ingest, iter_json_array, iter_json_lines


def acting_creator(request) -> CreatorAccount:
    creator = CreatorAccount.objects.filter(customer=acting_customer(request)).first()
    if creator is None:
        raise NotFound("This customer has no creator account.")
    return creator


class EngagementIngestView(APIView):
    permission_classes = [require_scope("engagement:write")]
    parser_classes: list = []  # the body is streamed, never loaded by a parser

    @extend_schema(request=None, responses={200: dict})
    def post(self, request):
        raw = request._request  # a Django HttpRequest is a file-like object over the body
        content_type = request.META.get("CONTENT_TYPE", "")
        if content_type.startswith("application/json"):
            try:
                data = json.loads(raw.read())
            except ValueError as exc:
                raise InvalidInput(f"The body is not valid JSON: {exc}") from exc
            if not isinstance(data, list):
                raise InvalidInput("A JSON body must be an array of rows.")
            rows = iter_json_array(data)
        else:
            rows = iter_json_lines(raw)
        client = request.user  # an ApiClient: the scope permission admits nothing else
        result = engagement_ingest(
            rows, actor_kind=AuditEvent.ActorKind.CLIENT, actor_label=f"{client.get_username()} (key {client.key_id})"
        )
        return Response(result.as_dict())


class EarningOut(serializers.Serializer):
    cycle = serializers.DateField(source="cycle.period", format="%Y-%m")
    cycle_state = serializers.CharField(source="cycle.state")
    score = serializers.DecimalField(max_digits=30, decimal_places=4)
    pool_amount = serializers.DecimalField(max_digits=19, decimal_places=2)
    subscription_amount = serializers.DecimalField(max_digits=19, decimal_places=2)
    clawed_back = serializers.DecimalField(max_digits=19, decimal_places=2)
    carried_in = serializers.DecimalField(max_digits=19, decimal_places=2)
    total = serializers.DecimalField(max_digits=19, decimal_places=2)
    payable = serializers.DecimalField(max_digits=19, decimal_places=2)
    carried_out = serializers.DecimalField(max_digits=19, decimal_places=2)
    currency = serializers.CharField()


class PayoutOut(serializers.Serializer):
    id = serializers.IntegerField()
    cycle = serializers.DateField(source="cycle.period", format="%Y-%m")
    amount = serializers.DecimalField(max_digits=19, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.CharField()
    paid_at = serializers.DateTimeField()
    failure_reason = serializers.CharField()


class CreatorEarningsView(APIView):
    permission_classes = [require_scope("creators:read")]

    @extend_schema(parameters=[ACTING_CUSTOMER_PARAMETER], responses={200: EarningOut(many=True)})
    def get(self, request):
        creator = acting_creator(request)
        earnings = selectors.creator_earnings(creator.pk)[:120]
        return Response({"creator_state": creator.state, "results": EarningOut(earnings, many=True).data})


class CreatorPayoutsView(APIView):
    permission_classes = [require_scope("creators:read")]

    @extend_schema(parameters=[ACTING_CUSTOMER_PARAMETER], responses={200: PayoutOut(many=True)})
    def get(self, request):
        creator = acting_creator(request)
        payouts = selectors.creator_payouts(creator.pk, status=request.query_params.get("status"))[:120]
        return Response({"results": PayoutOut(payouts, many=True).data})


class CreatorEligibilityView(APIView):
    permission_classes = [require_scope("creators:read")]

    @extend_schema(parameters=[ACTING_CUSTOMER_PARAMETER], responses={200: dict})
    def get(self, request):
        creator = acting_creator(request)
        decision = selectors.creator_current_eligibility(creator.pk)
        return Response(
            {
                "creator_state": creator.state,
                "eligible": decision.eligible if decision else None,
                "decided_at": decision.decided_at.isoformat() if decision else None,
                "reasons": decision.reasons if decision else {},
            }
        )


class CreatorConnectOnboardingLinkView(APIView):
    permission_classes = [require_scope("creators:write")]

    class OnboardingLinkRequestSerializer(serializers.Serializer):
        refresh_url = serializers.URLField(max_length=500)
        return_url = serializers.URLField(max_length=500)

    class OnboardingLinkSerializer(serializers.Serializer):
        account = serializers.CharField()
        url = serializers.URLField()
        expires_at = serializers.DateTimeField()

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER],
        request=OnboardingLinkRequestSerializer,
        responses={200: OnboardingLinkSerializer},
    )
    def post(self, request):
        creator = acting_creator(request)
        data = self.OnboardingLinkRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(creator_connect_onboarding_link(creator_id=creator.pk, **data.validated_data))

"""Org admin and client-app endpoints. Thin: fetch, call a service or selector, serialize.

Authentication: a client app's API key with the ``orgs:write`` scope, acting for
the customer named in ``X-Acting-Customer`` (monetization.api.acting); the services check that
this customer is an admin of the organization (``not_org_admin``) or, accepting an invitation,
that the invitation is theirs.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from monetization.api.acting import ACTING_CUSTOMER_PARAMETER, acting_customer, acting_label
from monetization.api.permissions import require_scope
from monetization.errors import InvalidInput, NotFound, OrgErrorCode
from monetization.models import Customer
from verified_orgs import selectors
from verified_orgs.invoice_pdf import invoice_pdf
from verified_orgs.models import Affiliation, Organization, OrgInvoice
from verified_orgs.services.affiliations import (
    affiliation_accept,
    affiliation_invite,
    affiliation_remove,
    org_admin_check,
)


class OrgAdminView(GenericAPIView):
    permission_classes = [require_scope("orgs:write")]

    def org_for_admin(self, request, handle: str) -> tuple[Organization, Customer]:
        customer = acting_customer(request)
        org = selectors.organization_by_handle(handle)
        org_admin_check(organization=org, customer=customer)
        return org, customer


class AffiliateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer = serializers.CharField(source="customer.external_id")
    handle = serializers.CharField(source="customer.handle")
    state = serializers.CharField()
    invited_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    accepted_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _affiliate_row(row: dict) -> dict:
    return {
        "id": row["id"],
        "customer": row["customer__external_id"],
        "handle": row["customer__handle"],
        "state": row["state"],
        "invited_at": _iso(row["invited_at"]),
        "expires_at": _iso(row["expires_at"]),
        "accepted_at": _iso(row["accepted_at"]),
        "ended_at": _iso(row["ended_at"]),
    }


class SeatPagination(CursorPagination):
    page_size = 100
    ordering = "-id"


class AffiliatesView(OrgAdminView):
    """List (cursor paginated, 100 a page, ``?state=``) and invite affiliates."""

    pagination_class = SeatPagination
    queryset = Affiliation.objects.none()  # for the schema; reads go through selectors

    class InviteSerializer(serializers.Serializer):
        customer = serializers.CharField(max_length=64, help_text="External id of the account to invite")

    class InvitationSerializer(AffiliateSerializer):
        token = serializers.CharField(help_text="Give it to the invitee; accepting needs it. Shown once.")

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER, OpenApiParameter("state", enum=Affiliation.State.values)],
        responses=AffiliateSerializer(many=True),
        operation_id="org_affiliates_list",
    )
    def get(self, request, handle: str):
        org, _ = self.org_for_admin(request, handle)
        state = request.query_params.get("state") or None
        if state is not None and state not in Affiliation.State.values:
            raise InvalidInput(f"Unknown state '{state}'. Use one of: {', '.join(Affiliation.State.values)}.")
        page = self.paginate_queryset(selectors.affiliates_rows(organization=org, state=state))
        # Plain rows, formatted by hand: DRF field-by-field serialization costs more than the query here.
        return self.get_paginated_response([_affiliate_row(row) for row in page])

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER],
        request=InviteSerializer,
        responses={201: InvitationSerializer},
        operation_id="org_affiliates_invite",
    )
    def post(self, request, handle: str):
        org, admin = self.org_for_admin(request, handle)
        data = self.InviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitee = Customer.objects.filter(external_id=data.validated_data["customer"]).first()
        if invitee is None:
            raise NotFound("No such customer.", code=OrgErrorCode.CUSTOMER_NOT_FOUND)
        affiliation, token = affiliation_invite(
            organization=org, customer=invitee, invited_by=admin, actor_label=acting_label(request, admin)
        )
        body = dict(AffiliateSerializer(affiliation).data, token=token)
        return Response(body, status=status.HTTP_201_CREATED)


class AffiliateView(OrgAdminView):
    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER], responses=AffiliateSerializer, operation_id="org_affiliates_remove"
    )
    def delete(self, request, handle: str, pk: int):
        org, admin = self.org_for_admin(request, handle)
        affiliation = Affiliation.objects.filter(organization=org, pk=pk).first()
        if affiliation is None:
            raise NotFound("No such affiliate in this organization.", code=OrgErrorCode.AFFILIATION_NOT_FOUND)
        affiliation = affiliation_remove(affiliation=affiliation, actor_label=acting_label(request, admin))
        return Response(AffiliateSerializer(affiliation).data)


class SubscriptionView(OrgAdminView):
    class OrgSubscriptionSerializer(serializers.Serializer):
        organization = serializers.CharField(source="handle")
        organization_state = serializers.CharField(source="state")
        seats = serializers.IntegerField()
        seat_limit = serializers.IntegerField(allow_null=True)
        subscription = serializers.DictField(allow_null=True)

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER], responses=OrgSubscriptionSerializer, operation_id="org_subscription"
    )
    def get(self, request, handle: str):
        org, _ = self.org_for_admin(request, handle)
        sub = org.subscription
        return Response(
            {
                "organization": org.handle,
                "organization_state": org.state,
                "seats": selectors.seat_count(org.pk),
                "seat_limit": org.seat_limit,
                "subscription": None
                if sub is None
                else {
                    "id": sub.pk,
                    "state": sub.state,
                    "plan": sub.plan.code,
                    "quantity": sub.quantity,
                    "current_period_start": sub.current_period_start,
                    "current_period_end": sub.current_period_end,
                    "grace_end": sub.grace_end,
                },
            }
        )


class InvoicePagination(CursorPagination):
    page_size = 24
    ordering = "-period_start"


class InvoiceSerializer(serializers.ModelSerializer):
    class LineSerializer(serializers.Serializer):
        kind = serializers.CharField()
        description = serializers.CharField()
        quantity = serializers.IntegerField()
        amount = serializers.DecimalField(max_digits=19, decimal_places=4)

    lines = LineSerializer(many=True)
    currency = serializers.CharField()

    class Meta:
        model = OrgInvoice
        fields = ["id", "number", "status", "period_start", "period_end", "currency", "total", "tax", "vat_id", "lines"]


class InvoicesView(OrgAdminView):
    pagination_class = InvoicePagination
    queryset = OrgInvoice.objects.none()  # for the schema

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER], responses=InvoiceSerializer(many=True), operation_id="org_invoices"
    )
    def get(self, request, handle: str):
        org, _ = self.org_for_admin(request, handle)
        page = self.paginate_queryset(OrgInvoice.objects.filter(organization=org).prefetch_related("lines"))
        return self.get_paginated_response(InvoiceSerializer(page, many=True).data)


class InvoicePdfView(OrgAdminView):
    """An invoice of the organization as a PDF, for its admins."""

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER],
        responses={(200, "application/pdf"): bytes},
        operation_id="org_invoice_pdf",
    )
    def get(self, request, handle: str, number: str):
        org, _ = self.org_for_admin(request, handle)
        invoice = selectors.org_invoice_by_number(org, number)
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
        return response


class AcceptInvitationView(APIView):
    """The invited account (via its client app) accepts an invitation by token."""

    permission_classes = [require_scope("orgs:write")]

    class AcceptInvitationSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200)

    class AcceptedInvitationSerializer(AffiliateSerializer):
        organization = serializers.CharField(source="organization.handle")

    @extend_schema(
        parameters=[ACTING_CUSTOMER_PARAMETER],
        request=AcceptInvitationSerializer,
        responses=AcceptedInvitationSerializer,
        operation_id="org_invitation_accept",
    )
    def post(self, request):
        customer = acting_customer(request)
        data = self.AcceptInvitationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        affiliation = affiliation_accept(
            token=data.validated_data["token"], customer=customer, actor_label=acting_label(request, customer)
        )
        return Response(self.AcceptedInvitationSerializer(affiliation).data)

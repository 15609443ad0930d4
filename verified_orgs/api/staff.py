"""Staff API of verified organizations: the review and lifecycle actions and the invoice write-offs
of the admin, under /api/v1/staff/, through the same services (permission, billing, badges, audit).

Session-authenticated staff only (``StaffView``); each view names the permission it needs and the
service checks it again.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from monetization.api.staff import StaffView
from verified_orgs.models import INVOICE_MANAGE_PERM, Organization, OrgInvoice
from verified_orgs.services.billing import CLOSING_TRANSITIONS, org_invoice_close
from verified_orgs.services.organizations import STAFF_TRANSITIONS, TRANSITION_PERMS


class OrganizationOut(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "handle", "country", "state", "state_reason", "seat_limit", "verified_at"]


class OrgInvoiceOut(serializers.ModelSerializer):
    class Meta:
        model = OrgInvoice
        fields = ["id", "organization", "number", "status"]


class OrgReasonIn(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Required to reject, suspend, reinstate or cancel"
    )


class OrganizationActionView(StaffView):
    """start_review | verify | reject | suspend | reinstate | cancel: the review queue's buttons."""

    @property
    def required_perms(self):
        return (TRANSITION_PERMS[self.kwargs["action"]],)

    @extend_schema(
        request=OrgReasonIn,
        responses=OrganizationOut,
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=list(STAFF_TRANSITIONS))],
        operation_id="staff_organizations_action",
        tags=["staff"],
    )
    def post(self, request, pk: int, action: str):
        body = OrgReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        organization = get_object_or_404(Organization, pk=pk)
        organization = STAFF_TRANSITIONS[action](organization, request.user, body.validated_data["reason"])
        return Response(OrganizationOut(organization).data)


class OrgInvoiceActionView(StaffView):
    """void | mark_uncollectible an open invoice (Finance), at Stripe first, then here."""

    required_perms = (INVOICE_MANAGE_PERM,)

    @extend_schema(
        request=OrgReasonIn,
        responses=OrgInvoiceOut,
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=list(CLOSING_TRANSITIONS))],
        operation_id="staff_org_invoices_action",
        tags=["staff"],
    )
    def post(self, request, pk: int, action: str):
        body = OrgReasonIn(data=request.data)
        body.is_valid(raise_exception=True)
        invoice = get_object_or_404(OrgInvoice, pk=pk)
        invoice = org_invoice_close(
            invoice=invoice, transition=action, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(OrgInvoiceOut(invoice).data)

"""Staff API for personal data requests: export a customer's data, queue and execute erasures."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from monetization.api.staff import StaffView
from monetization.models import Customer, ErasureRequest
from monetization.selectors_privacy import erasure_queue
from monetization.services import privacy as privacy_services


class ErasureRequestOut(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id")
    overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = ErasureRequest
        fields = [
            "id",
            "customer",
            "state",
            "requested_at",
            "due_at",
            "overdue",
            "requested_by",
            "reason",
            "started_at",
            "started_by",
            "decided_at",
            "decided_by",
            "decided_reason",
            "outcome",
        ]


class CustomerPersonalDataView(StaffView):
    """Everything held on one customer, as a JSON download (Compliance). Audited."""

    required_perms = (privacy_services.PERM_EXPORT,)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["staff"])
    def get(self, request, external_id: str):
        customer = get_object_or_404(Customer, external_id=external_id)
        document = privacy_services.personal_data_export(customer=customer, actor=request.user)
        response = Response(document)
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}-personal-data.json"'
        response["Cache-Control"] = "no-store"
        return response


class ErasureRequestListCreateView(StaffView):
    """The erasure queue: open requests by legal deadline (GET); log a new request (POST)."""

    class ErasureRequestIn(serializers.Serializer):
        customer = serializers.CharField(help_text="The customer's external id.")
        reason = serializers.CharField(help_text="How the request reached us.")

    @property
    def required_perms(self):
        if self.request.method == "POST":
            return (privacy_services.PERM_REQUEST,)
        return ("monetization.view_erasurerequest",)

    @extend_schema(responses=ErasureRequestOut(many=True), tags=["staff"])
    def get(self, request):
        return Response(ErasureRequestOut(erasure_queue()[:500], many=True).data)

    @extend_schema(request=ErasureRequestIn, responses={201: ErasureRequestOut}, tags=["staff"])
    def post(self, request):
        body = self.ErasureRequestIn(data=request.data)
        body.is_valid(raise_exception=True)
        customer = get_object_or_404(Customer, external_id=body.validated_data["customer"])
        erasure = privacy_services.erasure_request_create(
            customer=customer, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(ErasureRequestOut(erasure).data, status=status.HTTP_201_CREATED)


class ErasureNoteIn(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class _ErasureAction(StaffView):
    required_perms = (privacy_services.PERM_EXECUTE,)

    @extend_schema(request=ErasureNoteIn, responses=ErasureRequestOut, tags=["staff"])
    def post(self, request, pk: int):
        body = ErasureNoteIn(data=request.data)
        body.is_valid(raise_exception=True)
        erasure = get_object_or_404(ErasureRequest, pk=pk)
        erasure = self.act(erasure, request.user, body.validated_data["reason"])
        return Response(ErasureRequestOut(erasure).data)


class ErasureRequestStartView(_ErasureAction):
    def act(self, erasure, user, reason):
        return privacy_services.erasure_request_start(erasure=erasure, actor=user)


class ErasureRequestExecuteView(_ErasureAction):
    def act(self, erasure, user, reason):
        return privacy_services.erasure_request_execute(erasure=erasure, actor=user, reason=reason)


class ErasureRequestRejectView(_ErasureAction):
    def act(self, erasure, user, reason):
        return privacy_services.erasure_request_reject(erasure=erasure, actor=user, reason=reason)

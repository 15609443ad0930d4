"""Staff API: a price experiment's readout (per arm, with 95% intervals and the difference from control)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from monetization.api.staff import StaffView
from subscriptions.services.experiment_readout import experiment_readout


class ExperimentReadoutView(StaffView):
    """Whoever may see experiments may read their outcome (every staff role, subscriptions/roles.py)."""

    required_perms = ("subscriptions.view_experiment",)

    class ReadoutIn(serializers.Serializer):
        currency = serializers.RegexField(
            r"^[A-Za-z]{3}$", required=False, help_text="Revenue in this currency (default: the reporting currency)"
        )

    @extend_schema(
        parameters=[ReadoutIn], responses=OpenApiTypes.OBJECT, operation_id="staff_experiment_readout", tags=["staff"]
    )
    def get(self, request, pk: int):
        params = self.ReadoutIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        readout = experiment_readout(experiment_id=pk, currency=params.validated_data.get("currency", ""))
        return Response(readout.as_dict())

"""Staff metrics API: the Finance page's figures as JSON under /api/v1/staff/metrics/.

Read from the daily snapshots through the same selectors as the page (definitions:
``subscriptions.selectors_finance``, ``monetization.selectors_finance``); who may read the
ledger (Finance) may read them. Session-authenticated staff only, like the rest of the staff API.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from monetization import clock
from monetization.api.staff import StaffView
from monetization.selectors_finance import revenue_by_provider_currency
from subscriptions.selectors_finance import (
    SEGMENTS,
    churn,
    mrr_movement,
    mrr_series,
    retention_cohorts,
    trial_conversion,
)

MAX_RANGE_DAYS = 731
COHORT_MONTHS = 6


class MetricsRangeIn(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="first day (UTC); default: 29 days before the end")
    end = serializers.DateField(required=False, help_text="last day (UTC); default: today")
    segment = serializers.ChoiceField(choices=[key for key in SEGMENTS if key], required=False, default="")

    def validate(self, data):
        data["end"] = data.get("end") or clock.now().date()
        data["start"] = data.get("start") or data["end"] - datetime.timedelta(days=29)
        if data["start"] > data["end"]:
            raise serializers.ValidationError({"start": "The range starts after it ends."}, code="range_reversed")
        if (data["end"] - data["start"]).days >= MAX_RANGE_DAYS:
            raise serializers.ValidationError({"start": f"At most {MAX_RANGE_DAYS} days at once."})
        return data


def _decimal(value) -> str | None:
    return None if value is None else str(value)


class _MetricsView(StaffView):
    required_perms = ("monetization.view_journalentry",)

    def _range(self, request) -> dict:
        data = MetricsRangeIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data


class MrrMetricsView(_MetricsView):
    @extend_schema(
        parameters=[MetricsRangeIn], responses=OpenApiTypes.OBJECT, operation_id="staff_metrics_mrr", tags=["staff"]
    )
    def get(self, request):
        r = self._range(request)
        currency = settings.REPORTING_CURRENCY
        series = mrr_series(start=r["start"], end=r["end"], segment=r["segment"], currency=currency)
        return Response(
            {
                "reporting_currency": currency,
                "segment": r["segment"],
                "days": [
                    {
                        "day": p.day.isoformat(),
                        "active": p.active,
                        "mrr": _decimal(p.mrr),
                        "arr": _decimal(None if p.mrr is None else p.mrr * 12),
                        "by_currency": {c: str(v) for c, v in sorted(p.by_currency.items())},
                        "by_segment": {
                            s: {"active": n, "mrr": _decimal(v)} for s, (n, v) in sorted(p.by_segment.items())
                        }
                        if r["segment"]
                        else {},
                        "missing_rates": sorted(p.missing_rates),
                    }
                    for p in series
                ],
            }
        )


class MovementMetricsView(_MetricsView):
    @extend_schema(
        parameters=[MetricsRangeIn],
        responses=OpenApiTypes.OBJECT,
        operation_id="staff_metrics_movement",
        tags=["staff"],
    )
    def get(self, request):
        r = self._range(request)
        rows = mrr_movement(start=r["start"], end=r["end"], segment=r["segment"])
        fields = ("start", "new", "reactivation", "expansion", "contraction", "churn", "end")
        return Response(
            {
                "segment": r["segment"],
                "rows": [
                    {"day": m.day.isoformat(), "currency": m.currency, "segment": m.segment}
                    | {name: str(getattr(m, name)) for name in fields}
                    for m in rows
                ],
            }
        )


class SummaryMetricsView(_MetricsView):
    @extend_schema(
        parameters=[MetricsRangeIn],
        responses=OpenApiTypes.OBJECT,
        operation_id="staff_metrics_summary",
        tags=["staff"],
    )
    def get(self, request):
        r = self._range(request)
        start, end = r["start"], r["end"]
        lost, trials = churn(start=start, end=end), trial_conversion(start=start, end=end)
        revenue = revenue_by_provider_currency(start=start, end=end, to=settings.REPORTING_CURRENCY)
        cohorts = retention_cohorts(start=end - datetime.timedelta(days=365), end=end, months=COHORT_MONTHS)
        return Response(
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "churn": {
                    "active_at_start": lost.active_at_start,
                    "churned": lost.churned,
                    "rate": _decimal(lost.rate),
                },
                "trials": {
                    "started": trials.started,
                    "ended": trials.ended,
                    "converted": trials.converted,
                    "rate": _decimal(trials.rate),
                },
                "revenue": [
                    {
                        "provider": row.provider,
                        "currency": row.currency,
                        "payments": row.payments,
                        "refunds_count": row.refunds_count,
                        **{name: str(getattr(row, name)) for name in ("gross", "refunds", "commission", "fees", "tax")},
                        "proceeds": str(row.proceeds),
                        "reporting": {k: _decimal(v) for k, v in row.reporting.items()},
                    }
                    for row in revenue
                ],
                "cohorts": [{"month": c.month.isoformat(), "size": c.size, "retained": c.retained} for c in cohorts],
            }
        )

"""The Finance page in the admin: MRR, active subscriptions, churn, trial conversion, cohorts, revenue.

Thin: a form for the range and the segment, the selectors (``subscriptions.selectors_finance``,
``monetization.selectors_finance``, where the definitions are written; they read the daily
snapshot tables only), and the charts, each with its numbers in a table beside it. Who may read the
ledger (Finance) may open it. Read from the replica when there is one (monetization/db_routing.py).
"""

from __future__ import annotations

import datetime

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from monetization import clock
from monetization.db_routing import reads_from_replica
from monetization.selectors_finance import recognized_revenue, revenue_by_provider_currency
from subscriptions.models import MetricsDay, Subscription
from subscriptions.selectors_finance import (
    SEGMENTS,
    churn,
    mrr_movement,
    mrr_series,
    retention_cohorts,
    trial_conversion,
)

from .charts import bar_chart, line_chart

PERMISSION = "monetization.view_journalentry"
# The lists Finance exports a range of, from this page: (label, admin changelist, the date it filters by).
RANGE_EXPORTS = (
    ("Payments", "monetization_payment", "occurred_at"),
    ("Refunds", "monetization_refund", "requested_at"),
    ("Disputes", "monetization_dispute", "opened_at"),
    ("Subscriptions started", "subscriptions_subscription", "started_at"),
)
MAX_RANGE_DAYS = 731
COHORT_MONTHS = 6


class FinanceRangeForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    segment = forms.ChoiceField(
        required=False, choices=[(key, key.replace("_", " ").capitalize() or "All") for key in SEGMENTS]
    )

    def clean(self):
        data = super().clean()
        today = clock.now().date()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"] - datetime.timedelta(days=29)
        if data["start"] > data["end"]:
            raise forms.ValidationError("The range starts after it ends.", code="range_reversed")
        if (data["end"] - data["start"]).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"At most {MAX_RANGE_DAYS} days at once.", code="range_too_long")
        return data


def _pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


MOVEMENT_PARTS = ("new", "reactivation", "expansion", "contraction", "churn")


def _movement_over_range(start, end) -> list[dict]:
    """Per currency: MRR at the start, each kind of movement summed over the range, MRR at the end."""
    rows: dict[str, dict] = {}
    for m in mrr_movement(start=start, end=end):
        row = rows.setdefault(
            m.currency, {"currency": m.currency, "start": m.start, **dict.fromkeys(MOVEMENT_PARTS, 0)}
        )
        for part in MOVEMENT_PARTS:
            row[part] += getattr(m, part)
        row["end"] = m.end
    return [rows[c] for c in sorted(rows)]


@reads_from_replica()
def finance_dashboard_view(request, admin_site):
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    form = FinanceRangeForm(request.GET)  # every field optional: an empty query is the last 30 days
    context = {
        **admin_site.each_context(request),
        "title": "Finance",
        "opts": Subscription._meta,
        "form": form,
        "reporting_currency": settings.REPORTING_CURRENCY,
    }
    if not form.is_valid():
        return TemplateResponse(request, "admin/subscriptions/finance.html", context, status=400)
    data = form.cleaned_data
    start, end, segment = data["start"], data["end"], data.get("segment") or ""
    currency = settings.REPORTING_CURRENCY
    series = mrr_series(start=start, end=end, segment=segment, currency=currency)
    segments = sorted({seg for point in series for seg in point.by_segment})
    revenue = revenue_by_provider_currency(start=start, end=end, to=currency)
    context.update(
        start=start,
        end=end,
        segment=segment,
        series=series,
        segments=segments,
        segment_rows=[(point.day, [point.by_segment.get(seg, (0, 0)) for seg in segments]) for point in series[-31:]],
        mrr_chart=line_chart(
            [(p.day.strftime("%m-%d"), p.mrr) for p in series],
            title="MRR",
            x_label="day (UTC)",
            y_label=f"MRR ({currency})",
        ),
        active_chart=line_chart(
            [(p.day.strftime("%m-%d"), p.active) for p in series],
            title="Active subscriptions",
            x_label="day (UTC)",
            y_label="active subscriptions",
        ),
        churn=churn(start=start, end=end),
        trials=trial_conversion(start=start, end=end),
        cohorts=retention_cohorts(start=end - datetime.timedelta(days=365), end=end, months=COHORT_MONTHS),
        cohort_offsets=list(range(COHORT_MONTHS + 1)),
        revenue=revenue,
        revenue_chart=bar_chart(
            [(f"{r.provider} {r.currency}", r.reporting.get("proceeds")) for r in revenue],
            title="Proceeds by provider and currency",
            x_label="provider and currency",
            y_label=f"proceeds ({currency})",
        ),
        recognized=recognized_revenue(start=start, end=end),
        refreshed_at=MetricsDay.objects.filter(day=end).aggregate(at=Max("refreshed_at"))["at"],
        exports=[
            (
                label,
                reverse(f"admin:{url}_changelist"),
                urlencode({f"{field}__date__gte": start, f"{field}__date__lte": end}),
            )
            for label, url, field in RANGE_EXPORTS
        ],
        movement=_movement_over_range(start, end),
        pct=_pct,
    )
    context["churn_rate"] = _pct(context["churn"].rate)
    context["trial_rate"] = _pct(context["trials"].rate)
    context["cohort_rows"] = [
        (c, [(c.retained[k], _pct(c.share(k))) if k < len(c.retained) else None for k in context["cohort_offsets"]])
        for c in context["cohorts"]
    ]
    return TemplateResponse(request, "admin/subscriptions/finance.html", context)

"""Reads for personal data requests: what we hold on a customer, and the erasure queue."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from monetization import clock
from monetization.models import Customer, ErasureRequest
from monetization.personal_data import Subject, personal_data_sources, subject_for

EXPORT_FORMAT = 1


def _rows(source, subject: Subject) -> list[dict[str, Any]]:
    model = source.model_class
    columns = [f.attname for f in model._meta.concrete_fields if f.name not in source.exclude_fields]
    return list(source.queryset(subject).order_by(*(f.attname for f in model._meta.pk_fields)).values(*columns))


def customer_personal_data(customer: Customer) -> dict[str, Any]:
    """Everything held on ``customer``, one key per registered source (``app_label.Model``), JSON-safe.

    Bounded by the customer's own rows: each source is one query (the audit trail and the
    inbox read the customer's objects and provider ids first).
    """
    subject = subject_for(customer)
    sources = {label: _rows(source, subject) for label, source in personal_data_sources.items()}
    document = {
        "format": EXPORT_FORMAT,
        "generated_at": clock.now(),
        "customer": {
            "id": customer.pk,
            "external_id": customer.external_id,
            "handle": customer.handle,
            "email": customer.email,
            "country": customer.country,
            "created_at": customer.created_at,
        },
        "sources": sources,
    }
    # Round-trip through JSON so the caller holds plain values (Decimal, datetime, UUID as strings).
    return json.loads(json.dumps(document, cls=DjangoJSONEncoder))


def erasure_queue() -> QuerySet[ErasureRequest]:
    """Open erasure requests, the nearest legal deadline first."""
    return (
        ErasureRequest.objects.filter(state__in=ErasureRequest.OPEN).select_related("customer").order_by("due_at", "id")
    )

"""Where personal data lives: the registry that both the export and the erasure read.

Every model that refers to a customer is either a :class:`PersonalDataSource` (exported, and
pseudonymized on erasure) or named in :data:`not_personal_data` with the reason. The core
declares its own tables here; each app declares its tables from ``AppConfig.ready()``. A test
walks the app registry and fails on a model that is in neither, so a new table cannot be
forgotten silently.

A source selects a customer's rows by ORM paths to the customer (``payment__customer``), or by
``rows(subject)`` for tables that refer to the customer otherwise (the webhook inbox by
provider ids, the audit trail by the objects it is about).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.db import models
from django.db.models import Q, QuerySet
from django.db.models.functions import Cast

from monetization.registry import Registry

TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)


@dataclass
class Subject:
    """The customer whose data is read or erased, with everything that identifies them in text."""

    customer: Any
    identifiers: list[str] = field(default_factory=list)

    @property
    def pattern(self) -> str:
        """A PostgreSQL regular expression matching any identifier as a whole token, any case.

        Longest first, so an e-mail is replaced whole rather than around its handle; the
        lookarounds keep ``ann`` from matching inside ``joanna``.
        """
        words = sorted({w for w in self.identifiers if w}, key=len, reverse=True)
        if not words:
            return ""
        alternatives = "|".join(re.escape(w) for w in words)
        return rf"(?<![[:alnum:]_])(?:{alternatives})(?![[:alnum:]_])"


@dataclass(frozen=True)
class PersonalDataSource:
    """A table holding data about a customer.

    ``customer_paths``: ORM lookups from the model to the customer (any of them selects a row).
    ``rows``: instead, a function of the :class:`Subject` giving the queryset.
    ``personal_fields``: the columns erasure pseudonymizes; None means every text and JSON column
    (only the customer's identifiers inside them are replaced, so codes and keys are unaffected).
    ``append_only``: the table's trigger refuses updates; the database function rewrites the
    columns its trigger names (see migration 0017) and nothing else.
    ``exclude_fields``: never exported (secrets such as token hashes).
    """

    model: str
    customer_paths: tuple[str, ...] = ()
    rows: Callable[[Subject], QuerySet] | None = None
    personal_fields: tuple[str, ...] | None = None
    append_only: bool = False
    exclude_fields: tuple[str, ...] = ()

    @property
    def model_class(self) -> type[models.Model]:
        return apps.get_model(self.model)

    def queryset(self, subject: Subject) -> QuerySet:
        if self.rows is not None:
            return self.rows(subject)
        condition = reduce(lambda a, b: a | b, (Q(**{path: subject.customer.pk}) for path in self.customer_paths))
        rows = self.model_class._default_manager.filter(condition)
        # A path through a reverse or many-valued relation can repeat a row.
        return rows.distinct() if len(self.customer_paths) > 1 or "__" in self.customer_paths[0] else rows

    def scrubbed_fields(self) -> list[models.Field]:
        concrete = [f for f in self.model_class._meta.concrete_fields if isinstance(f, TEXT_FIELDS)]
        if self.personal_fields is None:
            return concrete
        return [f for f in concrete if f.name in self.personal_fields]


# personal_data_sources.register("app_label.Model", PersonalDataSource(...)): one source per model.
personal_data_sources: Registry[PersonalDataSource] = Registry("personal data source")
# not_personal_data.register("app_label.Model", "why it holds nothing personal").
not_personal_data: Registry[str] = Registry("not-personal declaration")
# Identifiers found in an app's data beyond the customer row (names a provider sent):
# identifier_finders.register(name, fn(customer) -> list[str]).
identifier_finders: Registry[Callable[[Any], list[str]]] = Registry("identifier finder")


def source(model: str, **kwargs) -> PersonalDataSource:
    return personal_data_sources.register(model, PersonalDataSource(model=model, **kwargs))


def text_matches(queryset: QuerySet, columns: list[str], pattern: str) -> QuerySet:
    """The rows where any of ``columns`` (text or JSON) matches ``pattern``: no index, so only for
    small tables (stored API responses) or rows already narrowed to the customer."""
    if not pattern:
        return queryset.none()
    annotations = {f"_{c}_text": Cast(c, models.TextField()) for c in columns}
    condition = reduce(lambda a, b: a | b, (Q(**{f"_{c}_text__iregex": pattern}) for c in columns))
    return queryset.annotate(**annotations).filter(condition)


# --- names a provider sent us ---------------------------------------------------------------

# Stripe puts the payer's name and e-mail in these places of a charge, invoice or customer object.
_NAME_KEYS = {"customer_name", "customer_email", "receipt_email"}
_NAME_PARENTS = {"billing_details", "customer_details", "shipping"}


def _names_in(value: Any, parent: str = "", found: set[str] | None = None) -> set[str]:
    found = set() if found is None else found
    if isinstance(value, dict):
        is_customer = value.get("object") == "customer"
        for key, item in value.items():
            if isinstance(item, str) and item.strip():
                if key in _NAME_KEYS or (key in ("name", "email") and (parent in _NAME_PARENTS or is_customer)):
                    found.add(item.strip())
            else:
                _names_in(item, key, found)
    elif isinstance(value, list):
        for item in value:
            _names_in(item, parent, found)
    return found


def provider_identifiers(customer) -> list[str]:
    """Names and e-mails the payment providers sent with this customer's events."""
    found: set[str] = set()
    for payload in _inbox_rows(customer).values_list("payload", flat=True).iterator():
        _names_in(payload, found=found)
    return sorted(found)


def subject_for(customer) -> Subject:
    """Everything that identifies ``customer`` in text: e-mail, handle, and what providers sent."""
    identifiers = {customer.email, customer.handle}
    for finder in identifier_finders:
        identifiers.update(finder(customer))
    pseudonym = pseudonym_for(customer)
    return Subject(customer=customer, identifiers=sorted(i for i in identifiers if i and i != pseudonym))


def pseudonym_for(customer) -> str:
    return f"erased-{customer.pk}"


# --- the core's own tables ------------------------------------------------------------------

# Provider-side references that webhook events carry: apps add theirs (subscription ids).
# provider_references.register(name, fn(customer) -> list[str]).
provider_references: Registry[Callable[[Any], list[str]]] = Registry("provider reference source")


def customer_references(customer) -> list[str]:
    from monetization.models import Payment, ProviderIdentity, Refund

    refs = set(ProviderIdentity.objects.filter(customer=customer).values_list("value", flat=True))
    refs.update(Payment.objects.filter(customer=customer).values_list("provider_reference", flat=True))
    refs.update(
        Refund.objects.filter(customer=customer)
        .exclude(provider_refund_id="")
        .values_list("provider_refund_id", flat=True)
    )
    for more in provider_references:
        refs.update(more(customer))
    return sorted(r for r in refs if r)


def _inbox_rows(customer) -> QuerySet:
    """Webhook events about the customer: by subscription (indexed), or whose object is the customer,
    one of their payments or refunds (Stripe charge and customer events carry no subscription)."""
    from monetization.models import WebhookEvent

    refs = customer_references(customer)
    if not refs:
        return WebhookEvent.objects.none()
    return WebhookEvent.objects.filter(
        Q(subscription_ref__in=refs)
        | Q(payload__data__object__customer__in=refs)
        | Q(payload__data__object__id__in=refs)
        | Q(payload__data__object__payment_intent__in=refs)
    )


def _audit_rows(subject: Subject) -> QuerySet:
    """Audit rows about the customer: on their timeline, or about any object a source holds for them."""
    from monetization.models import AuditEvent

    condition = Q(customer=subject.customer)
    for src in personal_data_sources:
        model = src.model_class
        if src.rows is not None or len(model._meta.pk_fields) > 1:
            continue  # audit rows name objects by one id
        ids = [str(pk) for pk in src.queryset(subject).values_list("pk", flat=True)]
        if ids:
            condition |= Q(object_type=model._meta.label_lower, object_id__in=ids)
    return AuditEvent.objects.filter(condition)


def _admin_log_rows(subject: Subject) -> QuerySet:
    # The admin's own change history names objects by their text (str(customer) is the handle).
    return text_matches(LogEntry.objects.all(), ["object_repr", "change_message"], subject.pattern)


def _idempotency_rows(subject: Subject) -> QuerySet:
    from monetization.models import IdempotencyKey

    # Stored responses live a day or two (purged), so the table is small enough to search.
    return text_matches(IdempotencyKey.objects.all(), ["response_body"], subject.pattern)


def register_core_sources() -> None:
    source("monetization.Customer", customer_paths=("pk",))
    source("monetization.ProviderIdentity", customer_paths=("customer",))
    source("monetization.Payment", customer_paths=("customer",))
    source("monetization.Refund", customer_paths=("customer",))
    source("monetization.Dispute", customer_paths=("customer",))
    source("monetization.ConsumptionRequest", customer_paths=("customer",))
    source("monetization.RevenueDeferral", customer_paths=("payment__customer",))
    source("monetization.JournalEntry", customer_paths=("customer",), personal_fields=("memo",), append_only=True)
    source("monetization.JournalLine", customer_paths=("entry__customer",))
    source(
        "monetization.AuditEvent",
        rows=_audit_rows,
        personal_fields=("actor_label", "before", "after", "reason"),
        append_only=True,
    )
    source("monetization.OutboxEvent", customer_paths=("customer",))
    source("monetization.EventDelivery", customer_paths=("event__customer",))
    source("monetization.WebhookEvent", rows=lambda subject: _inbox_rows(subject.customer))
    source("monetization.IdempotencyKey", rows=_idempotency_rows)
    source("monetization.ErasureRequest", customer_paths=("customer",))
    # Transfers and merges name the customer on either side; staff's reasons may quote them.
    source(
        "monetization.CustomerMerge",
        customer_paths=("source", "target"),
        personal_fields=("reason", "decided_reason", "preview", "moved"),
    )
    source("admin.LogEntry", rows=_admin_log_rows)
    identifier_finders.register("monetization.provider_payloads", provider_identifiers)

"""Admin for the money core: customers, provider identities, API keys, payments, ledger, audit trail.

Big tables (customers, payments, journal, audit) use LargeTableAdmin: estimated
counts, no full result count, exact-match search on indexed columns. Filters
only on fields with choices (no ``SELECT DISTINCT`` over a big table) or on
small value lists read through an index.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Case, OuterRef, Q, Subquery, Sum, Value, When
from django.template.response import TemplateResponse
from djmoney.money import Money

from monetization.changelist import AppendOnlyAdmin, LargeTableAdmin
from monetization.errors import DomainError, staff_message
from monetization.exports import EXPORT_PERMISSION, CsvExportMixin
from monetization.models import (
    ApiKey,
    AuditEvent,
    ConsumptionRequest,
    Customer,
    Dispute,
    IdempotencyKey,
    JournalEntry,
    JournalLine,
    Payment,
    ProviderIdentity,
)
from monetization.registry import Registry
from monetization.selectors_support import customer_find_ids
from monetization.services.api_keys import api_key_create, api_key_revoke
from monetization.services.consumption import consumption_request_mark_answered

# The countries the customer list filters by: those we sell in, which the catalog knows
# (customer_countries.register(name, fn() -> country codes) from AppConfig.ready()). Not a
# DISTINCT over millions of customers.
customer_countries: Registry = Registry("customer country source")


def distinct_values(model, column: str, *, limit: int = 200) -> list[str]:
    """The distinct values of an indexed column, cheaply: a loose index scan (one index probe
    per value instead of reading the table), cached for five minutes."""
    cache_key = f"admin:distinct:{model._meta.db_table}:{column}"
    values = cache.get(cache_key)
    if values is not None:
        return values
    table = connection.ops.quote_name(model._meta.db_table)
    col = connection.ops.quote_name(column)
    sql = f"""
        WITH RECURSIVE t(v) AS (
            (SELECT {col} FROM {table} ORDER BY {col} LIMIT 1)
            UNION ALL
            SELECT (SELECT {col} FROM {table} WHERE {col} > t.v ORDER BY {col} LIMIT 1)
            FROM t WHERE t.v IS NOT NULL
        )
        SELECT v FROM t WHERE v IS NOT NULL LIMIT %s
    """  # noqa: S608 - identifiers come from model metadata, not input
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        values = [row[0] for row in cursor.fetchall()]
    cache.set(cache_key, values, 300)
    return values


class IndexedValueFilter(admin.SimpleListFilter):
    """A filter over a free-text but low-cardinality indexed column (e.g. audit ``action``)."""

    model = None
    column = ""

    def lookups(self, request, model_admin):
        return [(v, v) for v in distinct_values(self.model, self.column)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.column: self.value()})
        return queryset


# --- Customers ---------------------------------------------------------------------------------


class ProviderIdentityInline(admin.TabularInline):
    model = ProviderIdentity
    extra = 0
    fields = ("provider", "kind", "value", "created_at")
    readonly_fields = ("created_at",)


class CustomerCountryFilter(admin.SimpleListFilter):
    title = "country"
    parameter_name = "country"

    def lookups(self, request, model_admin):
        countries = sorted({c for source in customer_countries for c in source()})
        return [(c, c) for c in countries]

    def queryset(self, request, queryset):
        return queryset.filter(country=self.value()) if self.value() else queryset


@admin.register(Customer)
class CustomerAdmin(LargeTableAdmin):
    list_display = ("external_id", "handle", "email", "country", "providers", "created_at")
    list_filter = (CustomerCountryFilter,)
    exact_search_fields = ("external_id", "handle", "email")
    search_help_text = (
        "Part of a @handle or e-mail (any case), an external id, or any App Store / Google Play / Stripe id "
        "(payment, invoice, refund, subscription)."
    )
    inlines = (ProviderIdentityInline,)
    readonly_fields = ("created_at",)
    ordering = ("-id",)

    def get_queryset(self, request):
        # One query for the page's identities, not one per row.
        return super().get_queryset(request).prefetch_related("identities")

    @admin.display(description="providers")
    def providers(self, obj):
        return ", ".join(sorted({i.get_provider_display() for i in obj.identities.all()})) or "-"

    def get_search_results(self, request, queryset, search_term):
        # The same search as the front page's finder: exact ids, then any case, then part of a handle or e-mail.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(pk__in=customer_find_ids(term)), False


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(LargeTableAdmin):
    list_display = ("value", "provider", "kind", "customer", "created_at")
    list_filter = ("provider", "kind")
    list_select_related = ("customer",)
    exact_search_fields = ("value",)
    integer_search_fields = ("id", "customer_id")
    search_help_text = "Exact provider id (original transaction id, account token, purchase token, cus_...)."
    raw_id_fields = ("customer",)
    readonly_fields = ("created_at",)


# --- API keys ----------------------------------------------------------------------------------


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created through the service (the full key is shown once) and revoked, never edited or deleted."""

    list_display = ("name", "prefix", "scope_list", "status", "created_at", "created_by", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("created_by",)
    search_fields = ("=name", "=prefix")
    actions = ("revoke_keys",)
    # key_hash is never shown, not even read-only.
    readonly_fields = ("name", "prefix", "scope_list", "status", "created_at", "created_by", "revoked_at")
    fields = readonly_fields

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    @admin.display(description="status")
    def status(self, obj):
        return "revoked" if obj.is_revoked else "active"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("name", "scopes") if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays for the audit trail

    def save_model(self, request, obj, form, change):
        if change:
            return
        full, key = api_key_create(
            name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=request.user
        )
        obj.pk, obj.prefix, obj.key_hash, obj.scopes, obj.created_at = (
            key.pk,
            key.prefix,
            key.key_hash,
            key.scopes,
            key.created_at,
        )
        request._new_api_key = full

    def response_add(self, request, obj, post_url_continue=None):
        full = getattr(request, "_new_api_key", None)
        if full is None:
            return super().response_add(request, obj, post_url_continue)
        # Shown on this page only, never put in a message cookie or the session.
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "key": obj,
            "full_key": full,
        }
        response = TemplateResponse(request, "admin/monetization/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            try:
                api_key_revoke(key=key, revoked_by=request.user, reason="Revoked in the admin")
                revoked += 1
            except DomainError as exc:
                self.message_user(request, f"{key}: {staff_message(exc)}", messages.ERROR)
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)


# --- Payments ----------------------------------------------------------------------------------


@admin.register(Payment)
class PaymentAdmin(CsvExportMixin, LargeTableAdmin):
    """Read-mostly: payments are written by provider events and services, never typed in."""

    close_pack_date_field = "occurred_at"
    csv_columns = (
        "id",
        "customer__external_id",
        "provider",
        "provider_reference",
        "kind",
        "status",
        "amount_currency",
        "amount",
        "tax",
        "commission",
        "fee",
        "refunded",
        "occurred_at",
    )

    list_display = ("id", "customer", "provider", "kind", "amount", "status", "occurred_at")
    list_filter = ("provider", "status", "kind")
    list_select_related = ("customer",)
    provider_scoped_search_fields = ("provider_reference",)
    integer_search_fields = ("id", "customer_id")
    search_help_text = "Exact provider reference, payment id or customer id."
    raw_id_fields = ("customer",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.opts.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Dispute)
class DisputeAdmin(CsvExportMixin, AppendOnlyAdmin, LargeTableAdmin):
    """Finance's dispute queue: open chargebacks first, the nearest evidence deadline on top.

    Read-only: disputes are written by provider events; evidence is submitted at the provider.
    Seeing it takes ``view_dispute`` (Finance).
    """

    list_display = ("provider_dispute_id", "customer", "status", "amount", "evidence_due_by", "opened_at")
    list_filter = ("status", "provider")
    list_select_related = ("customer", "payment")
    close_pack_date_field = "opened_at"
    csv_columns = (
        "id",
        "provider",
        "provider_dispute_id",
        "payment__provider_reference",
        "customer__external_id",
        "status",
        "reason",
        "amount_currency",
        "amount",
        "withdrawn",
        "fees",
        "evidence_due_by",
        "opened_at",
        "closed_at",
    )
    provider_scoped_search_fields = ("provider_dispute_id",)
    integer_search_fields = ("id", "customer_id", "payment_id")
    search_help_text = "Exact provider dispute id, dispute id, customer id or payment id."

    def changelist_view(self, request, extra_context=None):
        # The figure Finance watches beside the queue: what the last reconciliation with each provider left.
        runs = AuditEvent.objects.filter(action="reconcile.run").order_by("object_id", "-id").distinct("object_id")
        for run in runs:
            self.message_user(
                request,
                f"Reconciliation with {run.object_id} ({run.occurred_at:%Y-%m-%d %H:%M}): "
                f"{run.after.get('drifts', 0)} drift(s), {run.after.get('left', 0)} left for a person.",
                messages.WARNING if run.after.get("left") else messages.INFO,
            )
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        # Open disputes first (what Finance must answer), then by deadline.
        open_first = Case(When(status__in=Dispute.OPEN, then=Value(0)), default=Value(1))
        return super().get_queryset(request).order_by(open_first, "evidence_due_by", "id")


# --- Ledger ------------------------------------------------------------------------------------


class JournalLineInline(admin.TabularInline):
    model = JournalLine
    fields = ("account", "amount", "currency")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class JournalKindFilter(IndexedValueFilter):
    title = "kind"
    parameter_name = "kind"
    model = JournalEntry
    column = "kind"


class JournalSourceTypeFilter(IndexedValueFilter):
    title = "source"
    parameter_name = "source_type"
    model = JournalEntry
    column = "source_type"


@admin.register(JournalEntry)
class JournalEntryAdmin(AppendOnlyAdmin, LargeTableAdmin):
    list_filter = (JournalKindFilter, JournalSourceTypeFilter)
    date_hierarchy = "posted_at"
    list_display = ("id", "posted_at", "kind", "amount", "customer", "source_type", "memo")
    list_select_related = ("customer",)
    exact_search_fields = ("key",)
    integer_search_fields = ("id", "customer_id")
    search_help_text = "Exact entry key, source id (of any source type), entry id or customer id."
    inlines = (JournalLineInline,)

    def get_queryset(self, request):
        # An entry's size is the sum of its debits; a correlated subquery costs only the page's rows.
        debits = (
            JournalLine.objects.filter(entry=OuterRef("pk"), amount__gt=0)
            .order_by()
            .values("entry")
            .annotate(total=Sum("amount"))
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                debit_total=Subquery(debits.values("total")),
                debit_currency=Subquery(
                    JournalLine.objects.filter(entry=OuterRef("pk"), amount__gt=0).values("currency")[:1]
                ),
            )
        )

    @admin.display(description="amount")
    def amount(self, obj):
        if obj.debit_total is None:
            return "-"
        if not obj.debit_currency:  # several currencies in one entry: no one amount to print
            return f"{obj.debit_total:,.2f}"
        return str(Money(obj.debit_total, obj.debit_currency))

    def search_conditions(self, term: str) -> list[Q]:
        # (source_type, source_id) is the index: probe it once per source type instead of scanning it.
        by_source = Q(source_type__in=distinct_values(JournalEntry, "source_type"), source_id=term)
        return [*super().search_conditions(term), by_source]


class JournalAccountFilter(IndexedValueFilter):
    title = "account"
    parameter_name = "account"
    model = JournalLine
    column = "account"


@admin.register(JournalLine)
class JournalLineAdmin(CsvExportMixin, AppendOnlyAdmin, LargeTableAdmin):
    list_display = ("id", "entry", "posted_at", "account", "amount", "currency")
    list_filter = (JournalAccountFilter, "currency")
    date_hierarchy = "entry__posted_at"
    close_pack_date_field = "entry__posted_at"
    csv_columns = (
        "id",
        "entry_id",
        "entry__key",
        "entry__kind",
        "entry__posted_at",
        "entry__customer__external_id",
        "account",
        "currency",
        "amount",
    )
    list_select_related = ("entry",)
    exact_search_fields = ("account",)
    integer_search_fields = ("id", "entry_id")
    search_help_text = "Exact account name, line id or entry id."

    @admin.display(description="posted", ordering="entry__posted_at")
    def posted_at(self, obj):
        return obj.entry.posted_at


# --- Audit trail -------------------------------------------------------------------------------


class AuditActionFilter(IndexedValueFilter):
    title = "action"
    parameter_name = "action"
    model = AuditEvent
    column = "action"


class AuditObjectTypeFilter(IndexedValueFilter):
    title = "object"
    parameter_name = "object_type"
    model = AuditEvent
    column = "object_type"


class AuditActorFilter(admin.SimpleListFilter):
    """Which staff member acted: answers "what did Support do today" with the date hierarchy."""

    title = "staff member"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(str(user.pk), user.get_username()) for user in staff[:200]]

    def queryset(self, request, queryset):
        value = self.value()
        # A hand-edited, non-numeric id matches nobody rather than failing the page.
        if value:
            return queryset.filter(actor_id=int(value)) if value.isdigit() else queryset.none()
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(CsvExportMixin, AppendOnlyAdmin, LargeTableAdmin):
    # The reason beside the action, so it is on screen without scrolling.
    list_display = ("occurred_at", "actor_name", "action", "short_reason", "object_type", "object_id", "customer")
    list_filter = (AuditActorFilter, "actor_kind", AuditActionFilter, AuditObjectTypeFilter)
    date_hierarchy = "occurred_at"
    list_select_related = ("customer", "actor")
    integer_search_fields = ("customer_id",)
    search_help_text = "Exact object id (of any type) or customer id."
    csv_columns = (
        "occurred_at",
        "actor__username",
        "actor_kind",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "customer__external_id",
        "reason",
        "request_id",
    )
    # Finance (who reads the books) and Compliance (who reads the trail) export it; each export is audited.
    csv_export_permissions = (EXPORT_PERMISSION, "monetization.view_auditevent")

    @admin.display(description="by", ordering="actor__username")
    def actor_name(self, obj):
        return obj.actor.get_username() if obj.actor_id else (obj.actor_label or obj.get_actor_kind_display())

    @admin.display(description="reason")
    def short_reason(self, obj):
        return (obj.reason[:60] + "…") if len(obj.reason) > 60 else obj.reason

    def search_conditions(self, term: str) -> list[Q]:
        # (object_type, object_id) is the index: probe it once per known type instead of scanning.
        conditions = [Q(object_type__in=distinct_values(AuditEvent, "object_type"), object_id=term)]
        if term.isdigit() and len(term) < 19:
            conditions.append(Q(customer_id=int(term)))
        return conditions


# --- Idempotency keys (read-only: the first response of money-moving requests) ---------------


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(AppendOnlyAdmin, LargeTableAdmin):
    list_display = ("key", "scope", "response_status", "created_at", "completed_at")
    exact_search_fields = ("key",)
    integer_search_fields = ("id",)
    search_help_text = "Exact Idempotency-Key value."


# --- Store consumption requests (Apple asks before it decides a refund) --------------------------


@admin.register(ConsumptionRequest)
class ConsumptionRequestAdmin(admin.ModelAdmin):
    """Support's queue: what a store asked about a purchase, nearest deadline first."""

    list_display = ("id", "provider", "transaction_id", "customer", "reason", "deadline", "status")
    list_filter = ("status", "provider")
    list_select_related = ("customer",)
    ordering = ("status", "deadline")
    search_fields = ("transaction_id", "original_transaction_id")
    actions = ["mark_answered"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.opts.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Mark answered in App Store Connect", permissions=["change"])
    def mark_answered(self, request, queryset):
        for item in queryset.filter(status=ConsumptionRequest.Status.QUEUED):
            consumption_request_mark_answered(request=item, actor=request.user, note="answered by Support")
        self.message_user(request, "Marked answered.")

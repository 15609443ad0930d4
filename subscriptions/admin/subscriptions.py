"""Admin for subscriptions, grants and dunning attempts.

Nothing here edits a subscription's fields: every change is a transition
button (django-fsm's FSMAdminMixin) that opens a form asking for a reason and
then calls :func:`subscription_change_state`, which checks the transition's
declared permission, locks the row, records the change in the audit trail
and invalidates the customer's entitlements. Lists stay fast on millions of
rows (LargeTableAdmin: estimated counts, exact-match search on indexed ids).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_fsm.admin import FSMAdminMixin

from monetization.changelist import LargeTableAdmin
from monetization.errors import DomainError, staff_message
from monetization.exports import CsvExportMixin
from monetization.models import AuditEvent
from subscriptions.models import DunningAttempt, Grant, Subscription
from subscriptions.services.actions import staff_grant_create, staff_grant_revoke
from subscriptions.services.lifecycle import Cause, subscription_change_state

from .finance import finance_dashboard_view

HISTORY_ROWS = 50


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, help_text="Recorded in the audit trail."
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class ExtendForm(ReasonForm):
    days = forms.IntegerField(min_value=1, max_value=366, help_text="Days added to the current period.")


class DunningAttemptInline(admin.TabularInline):
    model = DunningAttempt
    extra = 0
    can_delete = False
    fields = ("attempt", "due_at", "status", "created_at")
    readonly_fields = fields
    ordering = ("attempt",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(CsvExportMixin, FSMAdminMixin, LargeTableAdmin):
    list_display = ("id", "customer", "plan", "platform", "state", "current_period_end", "auto_renew")
    list_select_related = ("customer", "plan", "plan__product")
    list_filter = ("state", "platform")
    exact_search_fields = ("customer__external_id",)
    provider_scoped_search_fields = ("provider_subscription_id",)
    search_help_text = "Exact provider subscription id, customer external id, or subscription id."
    ordering = ("-id",)
    fsm_fields = ["state"]
    close_pack_date_field = "started_at"
    csv_columns = (
        "id",
        "customer__external_id",
        "customer__country",
        "plan__code",
        "platform",
        "provider",
        "provider_subscription_id",
        "state",
        "started_at",
        "trial_end",
        "current_period_start",
        "current_period_end",
        "auto_renew",
        "cancel_reason",
        "ended_at",
    )

    def get_urls(self):
        # The Finance page lives beside the subscriptions it charts (subscriptions.admin.finance).
        view = self.admin_site.admin_view(lambda request: finance_dashboard_view(request, self.admin_site))
        return [path("finance/", view, name="subscriptions_finance"), *super().get_urls()]

    fsm_forms = {
        "cancel": ReasonForm,
        "pause": ReasonForm,
        "resume": ReasonForm,
        "revoke": ReasonForm,
        "extend": ExtendForm,
    }
    inlines = [DunningAttemptInline]
    fieldsets = (
        (None, {"fields": ("customer", "plan", "sku", "platform", "provider", "provider_subscription_id", "state")}),
        (
            "Period",
            {
                "fields": (
                    "current_period_start",
                    "current_period_end",
                    "trial_end",
                    "grace_end",
                    "hold_end",
                    "billing_issue_at",
                    "auto_renew",
                    "cancel_reason",
                    "quantity",
                )
            },
        ),
        (
            "History",
            {"fields": ("started_at", "ended_at", "last_event_at", "acknowledged_at", "created_at", "state_history")},
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [*(f.name for f in Subscription._meta.fields), "state_history"]

    @admin.display(description="State history (newest first)")
    def state_history(self, obj):
        events = (
            AuditEvent.objects.filter(object_type="subscriptions.subscription", object_id=str(obj.pk))
            .select_related("actor")
            .order_by("-occurred_at", "-id")[:HISTORY_ROWS]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} &rarr; {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    date_format(e.occurred_at, "DATETIME_FORMAT"),
                    e.action,
                    (e.before or {}).get("state", ""),
                    (e.after or {}).get("state", ""),
                    e.actor.get_username() if e.actor else e.actor_label,
                    e.reason,
                )
                for e in events
            ),
        )
        if not rows:
            return "No recorded changes."
        header = "<tr><th>when</th><th>what</th><th>state</th><th>by</th><th>reason</th></tr>"
        return format_html("<table>{}{}</table>", mark_safe(header), rows)  # noqa: S308 - constant markup

    def has_add_permission(self, request):
        return False  # subscriptions come from providers (webhooks, purchases API)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Fields are never edited directly; transitions go through the lifecycle service."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A transition button posts to the change form; send it to the reason form instead, so
        # staff with view permission plus the transition's permission can act (checked there).
        transition = request.POST.get(self.fsm_post_param) if request.method == "POST" else None
        if transition:
            return redirect(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_transition",
                object_id=object_id,
                transition_name=transition,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        kwargs = dict(kwargs or {})
        reason = kwargs.pop("reason", "")
        if transition_name == "cancel":
            kwargs["reason"] = reason
        try:
            subscription_change_state(
                subscription=obj,
                transition=transition_name,
                cause=Cause.staff(request.user, reason),
                transition_kwargs=kwargs,
            )
        except DomainError as exc:
            self.message_user(request, f"{transition_name}: {staff_message(exc)}", level=messages.ERROR)
            return False
        self.message_user(request, f"Subscription {obj.pk}: {transition_name} done.", level=messages.SUCCESS)
        return True


class GrantForm(forms.ModelForm):
    revoke_reason_input = forms.CharField(
        label="Revoke with reason",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Fill in to revoke this grant (recorded in the audit trail).",
    )

    class Meta:
        model = Grant
        fields = ("customer", "entitlement", "product", "starts_at", "ends_at", "reason")


@admin.register(Grant)
class GrantAdmin(LargeTableAdmin):
    form = GrantForm
    list_display = ("id", "customer", "entitlement", "product", "ends_at", "revoked_at", "granted_by")
    list_select_related = ("customer", "entitlement", "product", "granted_by")
    exact_search_fields = ("customer__external_id",)
    raw_id_fields = ("customer",)
    ordering = ("-id",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("customer", "entitlement", "product", "ends_at", "reason")
        fields = ["customer", "entitlement", "product", "starts_at", "ends_at", "reason", "granted_by"]
        fields += ["revoked_at", "revoked_by", "revoke_reason"]
        return [*fields, "revoke_reason_input"] if obj.revoked_at is None else fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None:  # a grant needs an end (staff_grant_create says so too): asked for on the form
            form.base_fields["ends_at"].required = True
        return form

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [f.name for f in Grant._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False

    # Granting and revoking are their own permissions (Support grants, Compliance revokes),
    # not Django's generic add/change; the services check them again.
    def has_add_permission(self, request):
        return request.user.has_perm("subscriptions.grant_entitlement")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("subscriptions.revoke_grant")

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                grant = staff_grant_create(
                    customer=form.cleaned_data["customer"],
                    entitlement=form.cleaned_data.get("entitlement"),
                    product=form.cleaned_data.get("product"),
                    until=form.cleaned_data.get("ends_at"),
                    reason=form.cleaned_data["reason"],
                    user=request.user,
                )
                obj.pk = grant.pk
            elif form.cleaned_data.get("revoke_reason_input", "").strip():
                staff_grant_revoke(grant=obj, user=request.user, reason=form.cleaned_data["revoke_reason_input"])
        except DomainError as exc:
            self.message_user(request, staff_message(exc), level=messages.ERROR)


@admin.register(DunningAttempt)
class DunningAttemptAdmin(LargeTableAdmin):
    list_display = ("id", "subscription", "attempt", "due_at", "status")
    list_select_related = ("subscription",)
    list_filter = ("status",)
    exact_search_fields = ("subscription__provider_subscription_id",)
    integer_search_fields = ("id", "subscription_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

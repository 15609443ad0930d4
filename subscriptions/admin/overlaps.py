"""Support's queue of customers paying on two platforms at once (found by the daily detection).

The list shows what overlaps, the suggested fix and the store's manage link; a case is closed on
its page (resolve: the fix was made; dismiss: not a double payment), with a reason, through
:func:`overlap_case_decide`, which checks the permission and audits.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from monetization.errors import DomainError
from subscriptions.models import OverlapCase
from subscriptions.services.overlaps import overlap_case_decide


class OverlapDecisionForm(forms.ModelForm):
    decision = forms.ChoiceField(
        choices=[("", "—"), ("resolve", "Resolve: the fix was made"), ("dismiss", "Dismiss: not a double payment")],
        required=False,
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Recorded in the audit trail."
    )

    class Meta:
        model = OverlapCase
        fields: list[str] = []

    def clean(self):
        data = super().clean()
        if data.get("decision") and not (data.get("reason") or "").strip():
            self.add_error("reason", "A reason is required.")
        return data


@admin.register(OverlapCase)
class OverlapCaseAdmin(admin.ModelAdmin):
    form = OverlapDecisionForm
    list_display = ("id", "customer_link", "providers_list", "entitlements", "suggestion", "store_link", "state")
    list_filter = ("state", "fix")
    list_select_related = ("customer", "end__plan", "keep")
    ordering = ("-detected_at", "-id")
    search_fields = ("=customer__external_id",)
    readonly_fields = (
        "customer_link",
        "providers_list",
        "entitlements",
        "subscriptions",
        "suggestion",
        "store_link",
        "state",
        "detected_at",
        "last_seen_at",
        "decided_at",
        "decided_by",
        "decision_reason",
    )

    def get_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None and obj.state == OverlapCase.State.OPEN and self._can_decide(request):
            fields += ["decision", "reason"]
        return fields

    def _can_decide(self, request) -> bool:
        return request.user.has_perm("subscriptions.decide_overlapcase")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return self._can_decide(request)

    @admin.display(description="customer")
    def customer_link(self, obj):
        url = reverse("admin:monetization_customer_support", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    @admin.display(description="platforms")
    def providers_list(self, obj):
        return ", ".join(obj.providers)

    @admin.display(description="paid twice for")
    def entitlements(self, obj):
        return ", ".join(obj.entitlement_keys)

    @admin.display(description="subscriptions")
    def subscriptions(self, obj):
        return format_html_join(
            ", ",
            '<a href="{}">#{}</a>',
            ((reverse("admin:subscriptions_subscription_change", args=[pk]), pk) for pk in obj.subscription_ids),
        )

    @admin.display(description="suggested fix")
    def suggestion(self, obj):
        if obj.end is None:
            return obj.get_fix_display()
        keep = f"; keep #{obj.keep_id} ({obj.keep.get_provider_display()})" if obj.keep is not None else ""
        verb = "cancel and refund the overlap" if obj.fix == OverlapCase.Fix.CANCEL_WEB else "customer cancels"
        return f"{verb}: #{obj.end_id} ({obj.end.get_provider_display()}, {obj.end.plan.code}){keep}"

    @admin.display(description="manage link")
    def store_link(self, obj):
        if not obj.manage_url:
            return "—"
        return format_html('<a href="{}" rel="noopener" target="_blank">store page</a>', obj.manage_url)

    def save_model(self, request, obj, form, change):
        decision = form.cleaned_data.get("decision")
        if not decision:
            return
        try:
            overlap_case_decide(case=obj, user=request.user, decision=decision, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            self.message_user(request, f"{exc.detail} ({exc.code})", level=messages.ERROR)

    def save_related(self, request, form, formsets, change):
        """Nothing related is edited here."""

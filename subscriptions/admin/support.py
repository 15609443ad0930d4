"""The support console's subscription panel: subscriptions, entitlements and grants, and their forms.

The customer page is the money core's (monetization.admin_support); this module is what
subscriptions adds to it, registered in subscriptions.apps: the panel
(``customer_panels``), the forms it posts (``customer_actions``) and the customer search
by provider subscription id (``customer_lookups``).
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404
from django.urls import reverse

from monetization.admin_support import act, act_once, form_errors
from monetization.models import Customer
from monetization.selectors_support import CustomerPanel, SummaryFact
from subscriptions.models import Entitlement, Grant, Product, Subscription
from subscriptions.selectors import customer_subscriptions
from subscriptions.services import actions

SUBSCRIPTION_ACTIONS = tuple(actions.SUBSCRIPTION_ACTIONS)


class GrantForm(forms.Form):
    """What to grant is picked from the catalog, and for how long must be said: N days or an end date."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    entitlement = forms.ChoiceField(required=False, help_text="An entitlement, or")
    product = forms.ChoiceField(required=False, help_text="a whole product")
    days = forms.IntegerField(required=False, min_value=1, max_value=3660, help_text="For N days, or")
    until = forms.DateTimeField(
        required=False,
        help_text="until (YYYY-MM-DD HH:MM, UTC). One of the two is required.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entitlement"].choices = [("", "—"), *Entitlement.objects.order_by("key").values_list("key", "key")]
        products = Product.objects.filter(is_active=True).order_by("rank", "code")
        self.fields["product"].choices = [("", "—"), *((p.code, f"{p.name} ({p.code})") for p in products)]


class TargetForm(forms.Form):
    """A subscription or grant action: which one, why, and (extend) by how many days."""

    target = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField()
    days = forms.IntegerField(required=False, min_value=1)


# A subscription that is still the customer's (pending to canceled-but-running), newest first.
SUMMARY_STATES = Subscription.LIVE_STATES


def summary_facts(customer_id: int) -> list[SummaryFact]:
    """The summary line's current plan and platform: each live subscription (a few at most), linked."""
    live = (
        Subscription.objects.filter(customer_id=customer_id, state__in=SUMMARY_STATES)
        .select_related("plan__product")
        .order_by("-started_at", "-id")[:3]
    )
    facts = [
        SummaryFact(
            label="current plan",
            text=f"{sub.plan.product.name} {sub.plan.get_interval_display().lower()} on {sub.get_platform_display()}"
            f" ({sub.get_state_display().lower()})",
            link=reverse("admin:subscriptions_subscription_change", args=[sub.pk]),
        )
        for sub in live
    ]
    return facts or [SummaryFact(label="current plan", text="none")]


def panel_load(customer: Customer) -> dict:
    data = customer_subscriptions(customer)
    return {
        "subscriptions": data.subscriptions,
        "entitlements": data.entitlements,
        "grants": data.grants,
        "subscription_actions": SUBSCRIPTION_ACTIONS,
        "grant_form": GrantForm(initial={"idempotency_key": uuid.uuid4().hex}),
    }


ACTION_LABELS = {
    "cancel": "Cancel at period end",
    "cancel_now": "Cancel now (access ends)",
    "extend": "Extend by days",
    "pause": "Pause",
    "resume": "Resume",
    "revoke": "Revoke access",
}


def panel_for_viewer(data: dict, user) -> dict:
    """Each subscription with the actions this viewer may take in its state; the grant form and revoke
    buttons only for who holds those permissions."""
    return {
        **data,
        "subscription_rows": [
            (s, [(op, ACTION_LABELS[op]) for op in actions.subscription_actions_offered(s, user)])
            for s in data["subscriptions"]
        ],
        "may_grant": user.has_perm(actions.PERM_GRANT),
        "may_revoke_grant": user.has_perm(actions.PERM_REVOKE_GRANT),
    }


PANEL = CustomerPanel(
    title="Subscriptions",
    load=panel_load,
    template="admin/subscriptions/customer_panel.html",
    top=True,
    for_viewer=panel_for_viewer,
)


def grant(request, customer: Customer) -> None:
    form = GrantForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return
    v = form.cleaned_data
    ent = Entitlement.objects.filter(key=v["entitlement"]).first() if v["entitlement"] else None
    prod = Product.objects.filter(code=v["product"]).first() if v["product"] else None
    if (v["entitlement"] and ent is None) or (v["product"] and prod is None):
        messages.error(request, "Unknown entitlement key or product code.")
        return
    act_once(
        request,
        lambda: actions.staff_grant_create(
            customer=customer,
            user=request.user,
            reason=v["reason"],
            entitlement=ent,
            product=prod,
            days=v["days"],
            until=v["until"],
        ),
        "Access granted.",
        kind="grant",
    )


def _target(request) -> TargetForm | None:
    form = TargetForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return None
    return form


def revoke_grant(request, customer: Customer) -> None:
    form = _target(request)
    if form is None:
        return
    grant_ = get_object_or_404(Grant, pk=form.cleaned_data["target"], customer=customer)
    reason = form.cleaned_data["reason"]
    act(request, lambda: actions.staff_grant_revoke(grant=grant_, user=request.user, reason=reason), "Grant revoked.")


def subscription_action(op: str):
    def handle(request, customer: Customer) -> None:
        form = _target(request)
        if form is None:
            return
        sub = get_object_or_404(Subscription, pk=form.cleaned_data["target"], customer=customer)
        common = {"subscription": sub, "user": request.user, "reason": form.cleaned_data["reason"]}
        days = form.cleaned_data["days"]
        calls = {
            "cancel": lambda: actions.subscription_cancel(**common, at_period_end=True),
            "cancel_now": lambda: actions.subscription_cancel(**common, at_period_end=False),
            "extend": lambda: actions.subscription_extend(**common, days=days or 0),
            "pause": lambda: actions.subscription_pause(**common),
            "resume": lambda: actions.subscription_resume(**common),
            "revoke": lambda: actions.subscription_revoke(**common),
        }
        act(request, calls[op], f"Subscription {op.replace('_', ' ')} done.")

    return handle


CUSTOMER_ACTIONS = {
    "grant": grant,
    "revoke_grant": revoke_grant,
    **{op: subscription_action(op) for op in SUBSCRIPTION_ACTIONS},
}

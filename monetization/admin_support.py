"""The support console in the Django admin: one page per customer, front-page search, refund approvals.

How it is hooked in: :func:`install` runs from ``MonetizationConfig.ready()``,
after the admin has autodiscovered every ``admin.py``. It wraps the *registered*
Customer admin's ``get_urls`` to add the support URLs under
``admin/monetization/customer/``; a Customer, Refund or AuditEvent admin nobody
registered gets a minimal one (LargeTableAdmin / AppendOnlyAdmin).

Apps above the core add their parts of the customer page through registries:
``customer_panels`` (monetization.selectors_support) for what the page shows, and
:data:`customer_actions` for the forms it posts (``op`` names the action).

URLs (names in the ``admin`` namespace):
- ``monetization_customer_support``          customer/<id>/support/   the customer page (GET) and its forms (POST)
- ``monetization_customer_find``             customer/find/?q=...     front-page search
- ``monetization_payment_refund``            customer/payment/<id>/refund/   refund form for one payment
- ``monetization_refunds_awaiting_approval`` refund/awaiting-approval/   Finance's queue
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, path, reverse
from djmoney.money import Money

from monetization.changelist import AppendOnlyAdmin, LargeTableAdmin
from monetization.errors import DomainError, staff_message
from monetization.exports import CsvExportMixin
from monetization.models import AuditEvent, Customer, Payment, Refund
from monetization.registry import Registry
from monetization.selectors_support import (
    customer_find,
    customer_overview,
    customer_summary,
    customer_timeline,
    timeline_webhook_events,
)
from monetization.services.idempotency import (
    idempotent_run,
    request_fingerprint,
)
from monetization.services.refund_preview import refund_preview
from monetization.services.refunds import (
    payment_refundable,
    refund_approve,
    refund_decisions_offered,
    refund_offered,
    refund_reject,
    refund_request,
    refund_retry,
)

# The customer page's forms that apps above the core handle: customer_actions.register(op, fn(request,
# customer)) from AppConfig.ready(); ``fn`` validates the POSTed form, calls a service and leaves a message.
CustomerAction = Callable[[HttpRequest, Customer], None]
customer_actions: Registry[CustomerAction] = Registry("customer page action")

# --- forms: every one asks for a reason --------------------------------------------


class RefundForm(forms.Form):
    payment = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # One key per rendered form: a double-click or a resubmitted page refunds once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    amount = forms.DecimalField(
        max_digits=19, decimal_places=4, min_value=Decimal("0.0001"), required=False, help_text="Blank: full refund"
    )
    reason_code = forms.ChoiceField(choices=Refund.Reason.choices)
    revoke_access = forms.ChoiceField(choices=Refund.RevokeAccess.choices, initial=Refund.RevokeAccess.NONE)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Reason / note")


class ReasonForm(forms.Form):
    target = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField()


REFUND_DECISIONS = ("approve_refund", "reject_refund", "retry_refund")


def act(request, fn, success: str) -> bool:
    try:
        result = fn()
    except DomainError as exc:
        messages.error(request, staff_message(exc))
        return False
    if isinstance(result, Refund) and result.status == Refund.Status.FAILED:
        # The request or approval went through, the provider did not: say so, not "done".
        messages.error(
            request,
            f"{success} The provider refused or failed: {result.failure_message} ({result.failure_code}); "
            "the refund is listed under failed refunds for a retry.",
        )
    elif isinstance(result, Refund) and result.status == Refund.Status.PENDING_APPROVAL:
        messages.warning(request, f"{success} It waits for a second person's approval (Finance).")
    else:
        messages.success(request, success)
    return True


def act_once(request, fn, success: str, *, kind: str) -> bool:
    """:func:`act`, at most once per rendered form: the form's ``idempotency_key`` makes a double click or a
    resubmitted page replay the first outcome instead of acting twice."""
    key = request.POST.get("idempotency_key", "")
    if not key:
        return act(request, fn, success)
    fields = sorted((k, v) for k, v in request.POST.items() if k != "csrfmiddlewaretoken")
    results: list = []

    def work():
        results.append(fn())
        return 201, {}

    try:
        answer = idempotent_run(
            scope=f"admin:user:{request.user.pk}:{kind}",
            key=key,
            fingerprint=request_fingerprint("POST", f"admin-{kind}", repr(fields).encode()),
            work=work,
        )
    except DomainError as exc:
        messages.error(request, staff_message(exc))
        return False
    if answer.replayed:
        messages.info(request, "This form was already submitted; nothing was done twice.")
        return False
    return act(request, lambda: results[0], success)


def form_errors(request, form) -> None:
    for field, errors in form.errors.items():
        messages.error(request, f"{field}: {' '.join(errors)}")


def _handle_refund(request, customer, data, payment_id=None):
    form = RefundForm(data)
    if not form.is_valid():
        form_errors(request, form)
        return
    pid = payment_id or form.cleaned_data["payment"]
    payment = Payment.objects.filter(pk=pid, customer=customer).first()
    if payment is None:
        messages.error(request, "Choose a payment of this customer.")
        return
    currency = str(payment.amount.currency)
    amount = form.cleaned_data["amount"]
    if amount is None:
        amount = payment_refundable(payment).amount

    def request_refund():
        return refund_request(
            payment=payment,
            amount=Money(amount, currency),
            reason_code=form.cleaned_data["reason_code"],
            note=form.cleaned_data["note"],
            revoke_access=form.cleaned_data["revoke_access"],
            requested_by=request.user,
        )

    success = f"Refund of {amount} {currency} requested."
    key = form.cleaned_data["idempotency_key"]
    if not key:
        act(request, request_refund, success)
        return
    # The form carries a key: a double submission (or a reload) replays instead of refunding twice.
    fields = sorted((k, v) for k, v in data.items() if k not in ("csrfmiddlewaretoken",))
    refunds: list[Refund] = []

    def work():
        refunds.append(request_refund())
        return 201, {"refund": refunds[0].pk}

    try:
        answer = idempotent_run(
            scope=f"admin:user:{request.user.pk}:refund",
            key=key,
            fingerprint=request_fingerprint("POST", "admin-refund", repr(fields).encode()),
            work=work,
        )
    except DomainError as exc:
        messages.error(request, staff_message(exc))
        return
    if answer.replayed:
        messages.info(request, "This refund form was already submitted; nothing was done twice.")
        return
    act(request, lambda: refunds[0], success)


def _refund_preview_page(request, customer, data, admin_site, payment_id=None):
    """The preview step: what the refund in the form would do, and the same form to confirm it.

    Nothing is written; the confirm button posts the unchanged fields (with the form's idempotency
    key) to the payment's refund page. A refusal goes back to the page it came from."""
    form = RefundForm(data)
    back = reverse("admin:monetization_customer_support", args=[customer.pk])
    if not form.is_valid():
        form_errors(request, form)
        return HttpResponseRedirect(back)
    pid = payment_id or form.cleaned_data["payment"]
    payment = Payment.objects.filter(pk=pid, customer=customer).first()
    if payment is None:
        messages.error(request, "Choose a payment of this customer.")
        return HttpResponseRedirect(back)
    amount = form.cleaned_data["amount"]
    if amount is None:
        amount = payment_refundable(payment).amount
    try:
        preview = refund_preview(
            payment=payment,
            amount=Money(amount, str(payment.amount.currency)),
            revoke_access=form.cleaned_data["revoke_access"],
            user=request.user,
        )
    except DomainError as exc:
        messages.error(request, f"{exc.detail} ({exc.code})")
        return HttpResponseRedirect(back)
    confirm = {k: v for k, v in form.cleaned_data.items() if k != "payment"}
    confirm["amount"] = amount
    context = {
        **admin_site.each_context(request),
        "title": f"Preview: refund of payment {payment.provider_reference}",
        "opts": Payment._meta,
        "payment": payment,
        "refundable": preview.refundable,
        "preview": preview,
        "preview_data": preview.as_dict(),
        "confirm": confirm,
        "refunds": list(payment.refunds.order_by("-id")[:50]),
    }
    return render(request, "admin/monetization/payment/refund.html", context)


def _handle_post(request, customer) -> None:
    op = request.POST.get("op", "")
    if op == "refund":
        _handle_refund(request, customer, request.POST)
    elif op in REFUND_DECISIONS:
        form = ReasonForm(request.POST)
        if form.is_valid():
            _decide_refund(request, form.cleaned_data["target"], op, form.cleaned_data["reason"])
        else:
            form_errors(request, form)
    elif op in customer_actions:
        customer_actions.get(op)(request, customer)
    else:
        messages.error(request, f"Unknown action '{op}'.")


def _decide_refund(request, refund_id: int, op: str, reason: str) -> None:
    refund = get_object_or_404(Refund, pk=refund_id)
    if op == "approve_refund":
        act(request, lambda: refund_approve(refund=refund, approved_by=request.user, reason=reason), "Refund approved.")
    elif op == "reject_refund":
        act(request, lambda: refund_reject(refund=refund, rejected_by=request.user, reason=reason), "Refund rejected.")
    elif op == "retry_refund":
        act(request, lambda: refund_retry(refund=refund, actor=request.user, reason=reason), "Refund retried.")


# --- views -----------------------------------------------------------------------------


def _require_view(request, perm: str = "monetization.view_customer") -> None:
    if not request.user.has_perm(perm):
        raise DjangoPermissionDenied


def _admin_link(object_type: str, object_id: str) -> str:
    """The admin page of a timeline event's object ("app_label.model" + id), or "" when it has none."""
    app_label, _, model = object_type.partition(".")
    if not model or not object_id:
        return ""
    try:
        return reverse(f"admin:{app_label}_{model}_change", args=[object_id])
    except NoReverseMatch:
        return ""


def customer_support_view(request, object_id: int, admin_site):
    _require_view(request)
    customer = get_object_or_404(Customer, pk=object_id)
    here = reverse("admin:monetization_customer_support", args=[customer.pk])
    if request.method == "POST":
        if request.POST.get("op") == "refund" and "preview" in request.POST:
            return _refund_preview_page(request, customer, request.POST, admin_site)
        _handle_post(request, customer)
        return HttpResponseRedirect(here)
    overview = customer_overview(customer, viewer=request.user)
    for refund in overview.refunds:
        refund.decisions = refund_decisions_offered(refund, request.user)
    page = customer_timeline(customer.pk, cursor=request.GET.get("cursor", ""))
    received = timeline_webhook_events(page.events)
    for event in page.events:
        event.link = _admin_link(event.object_type, event.object_id)
        # A provider's event links to what it sent; a staff member's to their audit trail.
        if event.actor_label in received:
            event.actor_link = reverse("admin:monetization_webhookevent_change", args=[received[event.actor_label]])
        elif event.actor_id:
            event.actor_link = reverse("admin:monetization_auditevent_changelist") + f"?actor={event.actor_id}"
    context = {
        **admin_site.each_context(request),
        "title": f"Customer {customer}",
        "opts": Customer._meta,
        "overview": overview,
        "customer": customer,
        "timeline": page.rows,
        "summary": customer_summary(customer.pk),
        "next_cursor": page.next_cursor,
        "refund_form": RefundForm(initial={"idempotency_key": uuid.uuid4().hex}),
        "refundable_payments": [p for p in overview.payments if refund_offered(p, request.user)],
        "top_panels": [p for p in overview.panels if p.top],
        "panels": [p for p in overview.panels if not p.top],
        "here": here,
    }
    return render(request, "admin/monetization/customer/support.html", context)


def payment_refund_view(request, payment_id: int, admin_site):
    _require_view(request, "monetization.view_payment")
    payment = get_object_or_404(Payment.objects.select_related("customer"), pk=payment_id)
    if request.method == "POST":
        if "preview" in request.POST:
            return _refund_preview_page(request, payment.customer, request.POST, admin_site, payment_id=payment.pk)
        _handle_refund(request, payment.customer, request.POST, payment_id=payment.pk)
        return HttpResponseRedirect(reverse("admin:monetization_customer_support", args=[payment.customer_id]))
    context = {
        **admin_site.each_context(request),
        "title": f"Refund payment {payment.provider_reference}",
        "opts": Payment._meta,
        "payment": payment,
        "refundable": payment_refundable(payment),
        "form": RefundForm(initial={"idempotency_key": uuid.uuid4().hex}),
        "refunds": list(payment.refunds.order_by("-id")[:50]),
    }
    return render(request, "admin/monetization/payment/refund.html", context)


def customer_find_view(request, admin_site):
    _require_view(request)
    term = request.GET.get("q", "").strip()
    matches = customer_find(term) if term else []
    if len(matches) == 1:
        return HttpResponseRedirect(reverse("admin:monetization_customer_support", args=[matches[0].pk]))
    context = {
        **admin_site.each_context(request),
        "title": f"Customers matching “{term}”" if term else "Find a customer",
        "opts": Customer._meta,
        "term": term,
        "matches": matches,
    }
    return render(request, "admin/monetization/customer/find.html", context)


def refunds_awaiting_approval_view(request, admin_site):
    _require_view(request, "monetization.view_refund")
    if request.method == "POST":
        form = ReasonForm(request.POST)
        if form.is_valid():
            _decide_refund(
                request, form.cleaned_data["target"], request.POST.get("op", ""), form.cleaned_data["reason"]
            )
        else:
            form_errors(request, form)
        return HttpResponseRedirect(reverse("admin:monetization_refunds_awaiting_approval"))
    refunds = list(
        Refund.objects.filter(status=Refund.Status.PENDING_APPROVAL)
        .select_related("customer", "payment", "requested_by")
        .order_by("requested_at", "id")[:200]
    )
    failed = list(
        Refund.objects.filter(status=Refund.Status.FAILED)
        .select_related("customer", "payment", "requested_by")
        .order_by("-id")[:50]
    )
    context = {
        **admin_site.each_context(request),
        "title": "Refunds awaiting approval",
        "opts": Refund._meta,
        "refunds": refunds,
        "failed": failed,
        "can_approve": request.user.has_perm("monetization.approve_refund"),
    }
    return render(request, "admin/monetization/refund/awaiting_approval.html", context)


def support_urls(admin_site) -> list:
    """URL patterns to put in front of the Customer admin's own (``customer/...``)."""
    wrap = admin_site.admin_view
    return [
        path("find/", wrap(lambda r: customer_find_view(r, admin_site)), name="monetization_customer_find"),
        path(
            "payment/<int:payment_id>/refund/",
            wrap(lambda r, payment_id: payment_refund_view(r, payment_id, admin_site)),
            name="monetization_payment_refund",
        ),
        path(
            "<int:object_id>/support/",
            wrap(lambda r, object_id: customer_support_view(r, object_id, admin_site)),
            name="monetization_customer_support",
        ),
    ]


# --- fallbacks and hook ----------------------------------------------------------------


class FallbackCustomerAdmin(LargeTableAdmin):
    list_display = ("external_id", "handle", "email", "country", "created_at")
    exact_search_fields = ("external_id", "handle", "email")


class RefundAdmin(CsvExportMixin, LargeTableAdmin):
    """Refunds change only through services (customer page, approval queue, staff API)."""

    change_list_template = "admin/monetization/refund/change_list.html"
    close_pack_date_field = "requested_at"
    csv_columns = (
        "id",
        "payment_id",
        "payment__provider",
        "payment__provider_reference",
        "customer__external_id",
        "status",
        "reason_code",
        "amount_currency",
        "amount",
        "provider_refund_id",
        "requested_by__username",
        "approved_by__username",
        "requested_at",
        "completed_at",
    )

    list_display = ("id", "customer", "amount", "reason_code", "status", "requested_by", "requested_at")
    list_filter = ("status", "reason_code")
    list_select_related = ("customer", "payment", "requested_by")
    exact_search_fields = ("provider_refund_id",)
    integer_search_fields = ("id", "customer_id", "payment_id")
    search_help_text = "Exact provider refund id, refund id, customer id or payment id."

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.opts.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "awaiting-approval/",
                self.admin_site.admin_view(lambda r: refunds_awaiting_approval_view(r, self.admin_site)),
                name="monetization_refunds_awaiting_approval",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "awaiting_url": reverse("admin:monetization_refunds_awaiting_approval"),
        }
        return super().changelist_view(request, extra_context)


def install(site=None) -> None:
    site = site or admin.site
    if Customer not in site._registry:
        site.register(Customer, FallbackCustomerAdmin)
    if Refund not in site._registry:
        site.register(Refund, RefundAdmin)
    if AuditEvent not in site._registry:
        site.register(AuditEvent, AppendOnlyAdmin)
    customer_admin = site._registry[Customer]
    if getattr(customer_admin, "_support_installed", False):
        return
    original = customer_admin.get_urls

    def get_urls():
        return support_urls(site) + original()

    customer_admin.get_urls = get_urls
    customer_admin._support_installed = True

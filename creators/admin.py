"""Admin: Finance's cycle page, Compliance's holds and creator reviews. Every button calls a service."""

from __future__ import annotations

import csv
from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django_fsm import can_proceed
from djmoney.money import Money

from monetization.changelist import AppendOnlyAdmin, LargeTableAdmin
from monetization.errors import DomainError, staff_message
from monetization.reasons import REASON_MAX_LENGTH
from monetization.selectors_support import customer_find

from . import runs, selectors
from .models import (
    CreatorAccount,
    CreatorEarning,
    CreatorStats,
    CreatorSubscriptionLink,
    CreatorSubscriptionShare,
    EligibilityDecision,
    Payout,
    PayoutHold,
    PayoutProfile,
    RevenueShareCycle,
)
from .models.cycles import APPROVE_PERM
from .services import accounts, cycles, eligibility, payouts


class _Echo:
    def write(self, value):
        return value


def _plan_text(plan: dict) -> str:
    if plan["run"] == "compute":
        return (
            f"computing would share a pool of {plan['pool']} {plan['currency']} among {plan['creators']} creators; "
            f"{plan['payouts']} payouts, payable {plan['payable']}, carried out {plan['carried_out']}."
        )
    amounts = ", ".join(f"{cur} {amount}" for cur, amount in plan["payable"].items()) or "nothing"
    return f"paying would pay {plan['payable_count']} payouts ({amounts}); {plan['held_count']} held, not paid."


def _run(request, fn, ok: str, **kwargs):
    try:
        fn(**kwargs)
    except DomainError as exc:
        messages.error(request, staff_message(exc))
    else:
        messages.success(request, ok)


class PayoutProfileInline(admin.StackedInline):
    model = PayoutProfile
    can_delete = False
    readonly_fields = [
        "payout_account_id",
        "tax_form_status",
        "tax_form_type",
        "verified_at",
        "payouts_enabled",
        "requirements_due",
        "connect_synced_at",
    ]


class CreatorStatsInline(admin.StackedInline):
    model = CreatorStats
    can_delete = False
    readonly_fields = ["verified_followers", "account_created_at", "updated_at"]


def _by_id_or_404(model, object_id):
    """The admin's change URLs take any path as an id (a page-relative link makes one): not a number, 404."""
    if not str(object_id).isdigit():
        raise Http404
    return get_object_or_404(model, pk=object_id)


@admin.register(CreatorAccount)
class CreatorAccountAdmin(LargeTableAdmin):
    list_display = ["id", "customer", "state", "state_changed_at"]
    list_filter = ["state"]
    list_select_related = ["customer"]
    exact_search_fields = ("customer__external_id", "customer__handle")
    raw_id_fields = ["customer"]
    readonly_fields = ["customer", "state", "applied_at", "state_changed_at", "state_reason", "decisions"]
    inlines = [PayoutProfileInline, CreatorStatsInline]
    change_form_template = "admin/creators/creatoraccount/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Latest eligibility decisions")
    def decisions(self, obj):
        rows = obj.eligibility_decisions.all()[:5]
        items = []
        for d in rows:
            detail = "; ".join(
                f"{name}: {'ok' if r['passed'] else 'FAIL'} ({r['measured']} vs {r['threshold']})"
                for name, r in d.reasons.items()
            )
            items.append(
                format_html(
                    "<li>{} {}: {}</li>",
                    date_format(d.decided_at, "DATETIME_FORMAT"),
                    "eligible" if d.eligible else "ineligible",
                    detail,
                )
            )
        return mark_safe("<ul>" + "".join(items) + "</ul>") if items else "-"  # noqa: S308 (escaped above)

    def get_urls(self):
        return [
            path(
                "<int:pk>/transition/",
                self.admin_site.admin_view(self.transition_view),
                name="creators_creator_transition",
            ),
            path("<int:pk>/holds/", self.admin_site.admin_view(self.holds_view), name="creators_creator_holds"),
            *super().get_urls(),
        ]

    def holds_view(self, request, pk):
        """Place a hold on one of the creator's payouts, or lift one, from the creator's page."""
        url = reverse("admin:creators_creatoraccount_change", args=[pk]) + "#payouts-and-holds"
        if request.method != "POST":
            return HttpResponseRedirect(url)
        op, reason = request.POST.get("op"), request.POST.get("reason", "")
        target = request.POST.get("payout_id" if op == "place" else "hold_id", "")
        mine = (
            Payout.objects.filter(creator_id=pk) if op == "place" else PayoutHold.objects.filter(payout__creator_id=pk)
        )
        if op not in ("place", "lift") or not target.isdigit() or not mine.filter(pk=int(target)).exists():
            messages.error(request, "Pick one of this creator's payouts or holds.")
        elif op == "place":
            _run(
                request,
                payouts.payout_hold_place,
                f"Hold placed on payout #{target}.",
                payout_id=int(target),
                kind=request.POST.get("kind", ""),
                reason=reason,
                actor=request.user,
            )
        else:
            _run(
                request,
                payouts.payout_hold_lift,
                "Hold lifted.",
                hold_id=int(target),
                reason=reason,
                actor=request.user,
            )
        return HttpResponseRedirect(url)

    def transition_view(self, request, pk):
        url = reverse("admin:creators_creatoraccount_change", args=[pk])
        if request.method != "POST":
            return HttpResponseRedirect(url)
        name = request.POST.get("transition", "")
        reason = request.POST.get("reason", "")
        if name == "evaluate":
            if not request.user.has_perm("creators.review_eligibility"):
                messages.error(request, "You need creators.review_eligibility.")
            else:
                _run(
                    request,
                    eligibility.eligibility_evaluate,
                    "Eligibility re-evaluated.",
                    creator_id=pk,
                    actor=request.user,
                )
        else:
            _run(
                request,
                accounts.creator_transition,
                f"{name.replace('_', ' ').capitalize()}: done.",
                creator_id=pk,
                transition=name,
                actor=request.user,
                reason=reason,
            )
        return HttpResponseRedirect(url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        creator = _by_id_or_404(CreatorAccount, object_id)
        # The account's available transitions that staff take, and this user may take.
        staff = accounts.STAFF_TRANSITIONS
        # (name, label); a transition into the state the account is already in (ban a banned creator) is none.
        transitions = [
            (t.name, t.custom.get("label") or t.name.replace("_", " ").capitalize())
            for t in creator.get_available_state_transitions()
            if t.name in staff
            and t.target != creator.state
            and (staff[t.name] is None or request.user.has_perm(staff[t.name]))
        ]
        section = selectors.creator_payouts_and_holds(creator.pk)
        may_hold = request.user.has_perm(payouts.HOLD_PERM)
        extra_context = {
            **(extra_context or {}),
            "transitions": transitions,
            "can_evaluate": request.user.has_perm("creators.review_eligibility"),
            "payout_section": section,
            # Compliance places and lifts holds here; others read them.
            "can_hold": may_hold,
            "holdable": [p for p in section["payouts"] if p.status == Payout.Status.HELD or can_proceed(p.hold)]
            if may_hold
            else [],
            "hold_kinds": PayoutHold.Kind.choices,
            "reason_max": REASON_MAX_LENGTH,
        }
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(EligibilityDecision)
class EligibilityDecisionAdmin(LargeTableAdmin, AppendOnlyAdmin):
    list_display = ["id", "creator", "decided_at", "eligible"]
    list_filter = ["eligible"]
    raw_id_fields = ["creator"]


class HoldInline(admin.TabularInline):
    model = PayoutHold
    extra = 0
    can_delete = False
    fields = ["kind", "reason", "placed_by", "placed_at", "lifted_by", "lifted_at", "lift_reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Payout)
class PayoutAdmin(LargeTableAdmin):
    list_display = ["id", "cycle", "creator", "amount_money", "status", "paid_at"]
    list_filter = ["status"]
    exact_search_fields = ("transfer_id",)
    integer_search_fields = ("id", "creator_id")
    search_help_text = (
        "Creator handle or e-mail (any case, part of it from 3 characters, with or without @), "
        "external id, transfer id, payout id or creator id."
    )
    readonly_fields = [f.name for f in Payout._meta.fields]

    def search_conditions(self, term: str) -> list[Q]:
        # The creator is found the way Support finds a customer (trigram indexes, exact ids first); a number
        # is a payout's or creator's id, not a customer's.
        customers = [] if term.isdigit() else [c.pk for c in customer_find(term)]
        found = [Q(creator__customer_id__in=customers)] if customers else []
        return [*super().search_conditions(term), *found]

    inlines = [HoldInline]
    change_form_template = "admin/creators/payout/change_form.html"

    @admin.display(description="amount", ordering="amount")
    def amount_money(self, obj):
        return Money(obj.amount, obj.currency)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("<int:pk>/hold/", self.admin_site.admin_view(self.hold_view), name="creators_payout_hold"),
            *super().get_urls(),
        ]

    def hold_view(self, request, pk):
        url = reverse("admin:creators_payout_change", args=[pk])
        if request.method == "POST":
            op = request.POST.get("op")
            reason = request.POST.get("reason", "")
            if op == "place":
                _run(
                    request,
                    payouts.payout_hold_place,
                    "Hold placed.",
                    payout_id=pk,
                    kind=request.POST.get("kind", ""),
                    reason=reason,
                    actor=request.user,
                )
            elif op == "lift":
                _run(
                    request,
                    payouts.payout_hold_lift,
                    "Hold lifted.",
                    hold_id=int(request.POST.get("hold_id", 0)),
                    reason=reason,
                    actor=request.user,
                )
            elif op == "retry":
                _run(request, payouts.payout_retry, "Payout queued for retry.", payout_id=pk, actor=request.user)
        return HttpResponseRedirect(url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        payout = _by_id_or_404(Payout, object_id)
        may_hold = request.user.has_perm(payouts.HOLD_PERM)
        extra_context = {
            **(extra_context or {}),
            "hold_kinds": PayoutHold.Kind.choices,
            "active_holds": PayoutHold.objects.filter(payout_id=object_id, lifted_at__isnull=True),
            # A held payout takes further holds; otherwise the model says whether it can be held.
            "can_hold": may_hold and (payout.status == Payout.Status.HELD or can_proceed(payout.hold)),
            "can_lift": may_hold,
            "can_retry": request.user.has_perm(payouts.RETRY_PERM) and can_proceed(payout.retry),
        }
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(PayoutHold)
class PayoutHoldAdmin(LargeTableAdmin):
    list_display = ["id", "payout", "kind", "placed_at", "placed_by", "lifted_at"]
    list_filter = ["kind"]
    raw_id_fields = ["payout"]
    readonly_fields = [f.name for f in PayoutHold._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreatorEarning)
class CreatorEarningAdmin(LargeTableAdmin, AppendOnlyAdmin):
    list_display = ["id", "cycle", "creator", "pool_amount", "subscription_amount", "total", "payable"]
    integer_search_fields = ("id", "creator_id")


@admin.register(CreatorSubscriptionLink)
class CreatorSubscriptionLinkAdmin(admin.ModelAdmin):
    list_display = ["plan", "creator", "created_at"]
    raw_id_fields = ["plan", "creator"]


@admin.register(CreatorSubscriptionShare)
class CreatorSubscriptionShareAdmin(LargeTableAdmin, AppendOnlyAdmin):
    list_display = ["id", "creator", "payment", "basis", "amount_money", "occurred_at"]

    @admin.display(description="amount", ordering="amount")
    def amount_money(self, obj):
        return Money(obj.amount, obj.currency)


@admin.register(RevenueShareCycle)
class RevenueShareCycleAdmin(admin.ModelAdmin):
    list_display = ["period", "state", "pool", "currency", "computed_by", "approved_by", "progress"]
    readonly_fields = [f.name for f in RevenueShareCycle._meta.fields if f.name not in ("period",)]
    change_form_template = "admin/creators/revenuesharecycle/change_form.html"
    # What each of the cycle's staff transitions calls (the services check state, permission, four-eyes).
    ACTIONS = {
        "start_computing": (runs.cycle_compute_request, "Computation queued; progress shows below."),
        "submit": (cycles.cycle_submit, "Sent to review."),
        "approve": (cycles.cycle_approve, "Cycle approved; payouts scheduled."),
        "reject": (partial(cycles.cycle_reject, reopen=False), "Cycle sent back."),
        "reopen": (partial(cycles.cycle_reject, reopen=True), "Cycle reopened for recomputation."),
        "start_paying": (runs.cycle_pay_request, "Paying run queued."),
        "close": (cycles.cycle_close, "Cycle closed."),
    }
    WITH_REASON = {"approve", "reject", "reopen", "close"}

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else [*self.readonly_fields, "period"]

    def save_model(self, request, obj, form, change):
        if not change:  # opening a cycle goes through the service (audited)
            cycle = cycles.cycle_open(period=obj.period, actor=request.user)
            obj.pk = cycle.pk
            obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress")
    def progress(self, obj):
        return f"compute {obj.compute_processed}/{obj.compute_total}, pay {obj.pay_processed}/{obj.pay_total}"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/act/", view(self.act_view), name="creators_cycle_act"),
            path("<int:pk>/payouts.csv", view(self.export_view), name="creators_cycle_export"),
            path("tax-totals/<int:year>.csv", view(self.tax_totals_view), name="creators_tax_totals"),
            *super().get_urls(),
        ]

    def _actions(self, cycle: RevenueShareCycle, user) -> list[dict]:
        """The buttons: the cycle's available transitions that this user may take (the model's permissions)."""
        offered = [
            t
            for t in cycle.get_available_user_state_transitions(user)
            if t.custom.get("admin", True) and t.name in self.ACTIONS
        ]
        order = list(self.ACTIONS)
        return [
            {
                "op": t.name,
                "label": t.custom.get("label", t.name),
                "reason": t.custom.get("reason", False) or t.name in self.WITH_REASON,
                # Approve and close open their confirmation page; the others are forms on the cycle page.
                "confirm": t.name in cycles.CONFIRMED_ACTIONS,
            }
            for t in sorted(offered, key=lambda t: order.index(t.name))
        ]

    def act_view(self, request, pk):
        url = reverse("admin:creators_revenuesharecycle_change", args=[pk])
        if request.method != "POST":
            op = request.GET.get("op", "")
            if op in cycles.CONFIRMED_ACTIONS:
                return self._confirm_page(request, pk, op)
            return HttpResponseRedirect(url)
        op = request.POST.get("op", "")
        if op == "dry_run":
            try:
                plan = cycles.cycle_dry_run(cycle_id=pk, actor=request.user)
            except DomainError as exc:
                messages.error(request, staff_message(exc))
            else:
                messages.info(request, "Dry run (nothing written): " + _plan_text(plan))
            return HttpResponseRedirect(url)
        if op not in self.ACTIONS:
            messages.error(request, "Unknown action.")
            return HttpResponseRedirect(url)
        service, ok = self.ACTIONS[op]
        reason = request.POST.get("reason", "")
        if op in cycles.CONFIRMED_ACTIONS:
            # Refused here, nothing is written: the confirmation page again, with what was typed and why.
            try:
                cycles.cycle_action_confirmed(
                    action=op, reason=reason, confirmed=request.POST.get("confirm_action") == "1"
                )
            except DomainError as exc:
                return self._confirm_page(request, pk, op, error=staff_message(exc), reason=reason)
        kwargs = {"reason": reason} if op in self.WITH_REASON else {}
        if op == "close":
            kwargs["confirm"] = request.POST.get("confirm") == "1"
        _run(request, service, ok, cycle_id=pk, actor=request.user, **kwargs)
        return HttpResponseRedirect(url)

    def _confirm_page(self, request, pk, op: str, *, error: str = "", reason: str = ""):
        """Approve or close, on a page of its own: what it does, a required reason, a ticked confirmation."""
        cycle = _by_id_or_404(RevenueShareCycle, pk)
        offered = {a["op"]: a for a in self._actions(cycle, request.user)}
        if op not in offered:
            messages.error(request, f"You cannot {op} this cycle now.")
            return HttpResponseRedirect(reverse("admin:creators_revenuesharecycle_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{offered[op]['label']}: cycle {cycle.period:%Y-%m}",
            "cycle": cycle,
            "op": op,
            "label": offered[op]["label"],
            "totals": selectors.cycle_totals(cycle),
            "error": error,
            "reason": reason,
            "reason_max": REASON_MAX_LENGTH,
        }
        return TemplateResponse(
            request, "admin/creators/revenuesharecycle/confirm.html", context, status=400 if error else 200
        )

    def export_view(self, request, pk):
        if not request.user.has_perm("creators.export_payouts"):
            raise PermissionDenied
        cycle = get_object_or_404(RevenueShareCycle, pk=pk)
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in selectors.payouts_csv_rows(cycle)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="payouts-{cycle.period:%Y-%m}.csv"'
        return response

    def tax_totals_view(self, request, year):
        """Per creator and currency, the year's earnings, clawbacks and payouts (tax reporting)."""
        if not request.user.has_perm("creators.export_payouts"):
            raise PermissionDenied
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in selectors.annual_creator_totals_rows(year)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="creator-totals-{year}.csv"'
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        cycle = _by_id_or_404(RevenueShareCycle, object_id)
        buckets = selectors.cycle_histogram(cycle)
        extra_context = {
            **(extra_context or {}),
            "cycle": cycle,
            "totals": selectors.cycle_totals(cycle),
            "histogram_svg": mark_safe(selectors.histogram_svg(buckets)),  # noqa: S308 (numbers only)
            "histogram": buckets,
            "histogram_total": sum(b["count"] for b in buckets),
            "top_earners": selectors.cycle_top_earners(cycle),
            "anomalies": selectors.cycle_anomalies(cycle),
            "actions": self._actions(cycle, request.user),
            "can_export": request.user.has_perm("creators.export_payouts"),
            "can_dry_run": request.user.has_perm("creators.compute_cycle")
            or request.user.has_perm("creators.approve_cycle"),
            # Approving is the model's transition, offered to anyone with the permission but whoever computed it.
            "four_eyes_block": can_proceed(cycle.approve)
            and request.user.has_perm(APPROVE_PERM)
            and cycle.computed_by_id == request.user.pk,
        }
        return super().change_view(request, object_id, form_url, extra_context)

"""Support's transfer and merge page, Finance's approval queue, and the read-only list of requests.

Thin: the page's Preview button shows what :func:`ownership_move_preview` counts, Request calls
:func:`customer_merge_request` (which counts again, under lock, and moves or holds for approval);
the queue calls :func:`customer_merge_approve` / :func:`customer_merge_reject`. The services check
the permissions again and write the audit trail.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from monetization.changelist import AppendOnlyAdmin
from monetization.errors import DomainError
from monetization.models import Customer, CustomerMerge
from monetization.services import customer_merge as merges


class MoveForm(forms.Form):
    source = forms.CharField(max_length=64, label="From customer (external id)")
    target = forms.CharField(max_length=64, label="To customer (external id, the survivor)")
    purchase = forms.IntegerField(
        required=False, min_value=1, label="Subscription id", help_text="Blank: merge everything of the customer"
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def customers(self) -> tuple[Customer, Customer] | None:
        found = Customer.objects.in_bulk(
            [self.cleaned_data["source"], self.cleaned_data["target"]], field_name="external_id"
        )
        missing = [x for x in (self.cleaned_data["source"], self.cleaned_data["target"]) if x not in found]
        if missing:
            self.add_error(None, f"No customer with external id {', '.join(missing)}.")
            return None
        return found[self.cleaned_data["source"]], found[self.cleaned_data["target"]]


class DecisionForm(forms.Form):
    target = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField()


@admin.register(CustomerMerge)
class CustomerMergeAdmin(AppendOnlyAdmin):
    change_list_template = "admin/monetization/customermerge/change_list.html"
    list_display = ("id", "kind", "source", "target", "status", "requested_by", "requested_at")
    list_filter = ("status", "kind")
    list_select_related = ("source", "target", "requested_by")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("new/", wrap(self.move_view), name="monetization_customermerge_new"),
            path("awaiting-approval/", wrap(self.awaiting_view), name="monetization_customermerge_awaiting"),
            *super().get_urls(),
        ]

    def move_view(self, request):
        if not request.user.has_perm(merges.PERM_REQUEST):
            raise DjangoPermissionDenied
        form = MoveForm(request.POST or None, initial=request.GET.dict())
        preview = None
        if request.method == "POST" and form.is_valid() and (pair := form.customers()) is not None:
            source, target = pair
            purchase = form.cleaned_data["purchase"]
            try:
                if request.POST.get("op") == "request":
                    merge = merges.customer_merge_request(
                        source=source,
                        target=target,
                        purchase_id=purchase,
                        reason=form.cleaned_data["reason"],
                        requested_by=request.user,
                    )
                    if merge.status == CustomerMerge.Status.PENDING_APPROVAL:
                        messages.warning(request, "Requested. It waits for a second person's approval (Finance).")
                    else:
                        messages.success(request, f"Done: {_summary(merge.moved)} moved to {target.external_id}.")
                    return HttpResponseRedirect(reverse("admin:monetization_customer_support", args=[target.pk]))
                preview = merges.ownership_move_preview(
                    source=source, target=target, purchase_id=purchase, actor=request.user
                )
            except DomainError as exc:
                messages.error(request, f"{exc.detail} ({exc.code})")
        context = {
            **self.admin_site.each_context(request),
            "title": "Transfer a purchase or merge two customers",
            "opts": self.opts,
            "form": form,
            "preview": preview,
        }
        return TemplateResponse(request, "admin/monetization/customermerge/new.html", context)

    def awaiting_view(self, request):
        if not request.user.has_perm("monetization.view_customermerge"):
            raise DjangoPermissionDenied
        if request.method == "POST":
            form = DecisionForm(request.POST)
            if form.is_valid():
                self._decide(
                    request, form.cleaned_data["target"], request.POST.get("op", ""), form.cleaned_data["reason"]
                )
            else:
                messages.error(request, "A decision needs a reason.")
            return HttpResponseRedirect(reverse("admin:monetization_customermerge_awaiting"))
        waiting = list(
            CustomerMerge.objects.filter(status=CustomerMerge.Status.PENDING_APPROVAL)
            .select_related("source", "target", "requested_by")
            .order_by("requested_at", "id")[:200]
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Transfers and merges awaiting approval",
            "opts": self.opts,
            "waiting": waiting,
            "can_approve": request.user.has_perm(merges.PERM_APPROVE),
        }
        return TemplateResponse(request, "admin/monetization/customermerge/awaiting_approval.html", context)

    def _decide(self, request, merge_id: int, op: str, reason: str) -> None:
        try:
            merge = merges.customer_merge_get(merge_id)
            if op == "approve":
                merges.customer_merge_approve(merge=merge, approved_by=request.user, reason=reason)
                messages.success(request, f"Approved: request {merge_id} done.")
            elif op == "reject":
                merges.customer_merge_reject(merge=merge, rejected_by=request.user, reason=reason)
                messages.success(request, f"Rejected request {merge_id}.")
            else:
                messages.error(request, f"Unknown decision '{op}'.")
        except DomainError as exc:
            messages.error(request, f"{exc.detail} ({exc.code})")


def _summary(moved: list[dict] | None) -> str:
    return ", ".join(f"{m['count']} {m['what']}" for m in moved or [] if m["count"]) or "nothing"

"""Admin for personal data requests: the erasure queue by legal deadline, its actions, and the
export download. Thin: every action is a service call (permission-checked and audited there)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from monetization import clock
from monetization.errors import DomainError
from monetization.models import Customer, ErasureRequest
from monetization.services import privacy as privacy_services


class ErasureRequestForm(forms.ModelForm):
    class Meta:
        model = ErasureRequest
        fields = ("customer", "reason")

    def clean_customer(self):
        customer = self.cleaned_data["customer"]
        if ErasureRequest.objects.filter(customer=customer, state__in=ErasureRequest.OPEN).exists():
            raise forms.ValidationError("This customer already has an open erasure request.")
        return customer


@admin.register(ErasureRequest)
class ErasureRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "state", "due_at", "deadline", "requested_at", "decided_by")
    list_filter = ("state",)
    list_select_related = ("customer", "requested_by", "decided_by")
    ordering = ("due_at", "id")
    search_fields = ("=customer__external_id",)
    raw_id_fields = ("customer",)
    form = ErasureRequestForm
    readonly_fields = (
        "customer",
        "state",
        "requested_at",
        "due_at",
        "requested_by",
        "reason",
        "started_at",
        "started_by",
        "decided_at",
        "decided_by",
        "decided_reason",
        "pretty_outcome",
    )

    def get_fields(self, request, obj=None):
        return ("customer", "reason") if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Deadline", ordering="due_at")
    def deadline(self, obj):
        if obj.state not in ErasureRequest.OPEN:
            return "-"
        now = clock.now()
        if obj.overdue:
            return format_html('<strong class="errornote">overdue by {} day(s)</strong>', (now - obj.due_at).days)
        return f"{(obj.due_at - now).days} day(s) left"

    @admin.display(description="Outcome")
    def pretty_outcome(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.outcome, indent=2))

    def save_model(self, request, obj, form, change):
        try:
            erasure = privacy_services.erasure_request_create(
                customer=form.cleaned_data["customer"], actor=request.user, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            raise DjangoPermissionDenied(exc.detail) from exc
        obj.pk = erasure.pk

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/act/<str:op>/", wrap(require_POST(self.act_view)), name="monetization_erasurerequest_act"),
            path(
                "export/<int:customer_pk>/",
                wrap(self.export_view),
                name="monetization_erasurerequest_export",
            ),
            *super().get_urls(),
        ]

    def act_view(self, request, pk: int, op: str):
        # Whoever may not decide gets a 403, as from the staff API, not a redirect with a message.
        if not request.user.has_perm(privacy_services.PERM_EXECUTE):
            raise DjangoPermissionDenied
        erasure = get_object_or_404(ErasureRequest, pk=pk)
        reason = request.POST.get("reason", "")
        actions = {
            "start": lambda: privacy_services.erasure_request_start(erasure=erasure, actor=request.user),
            "execute": lambda: privacy_services.erasure_request_execute(
                erasure=erasure, actor=request.user, reason=reason
            ),
            "reject": lambda: privacy_services.erasure_request_reject(
                erasure=erasure, actor=request.user, reason=reason
            ),
        }
        if op not in actions:
            raise DjangoPermissionDenied("Unknown action.")
        try:
            done = actions[op]()
            self.message_user(request, f"{done}: {op} done.", messages.SUCCESS)
        except DomainError as exc:
            self.message_user(request, f"{exc.detail} ({exc.code})", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:monetization_erasurerequest_change", args=[pk]))

    def export_view(self, request, customer_pk: int):
        customer = get_object_or_404(Customer, pk=customer_pk)
        try:
            document = privacy_services.personal_data_export(customer=customer, actor=request.user)
        except DomainError as exc:
            raise DjangoPermissionDenied(exc.detail) from exc
        response = HttpResponse(json.dumps(document, cls=DjangoJSONEncoder, indent=2), content_type="application/json")
        stamp = timezone.localtime(clock.now()).strftime("%Y%m%d")
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}-personal-data-{stamp}.json"'
        response["Cache-Control"] = "no-store"
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        erasure = self.get_object(request, object_id)
        if erasure is not None:
            extra_context.update(
                erasure=erasure,
                can_execute=request.user.has_perm(privacy_services.PERM_EXECUTE),
                can_export=request.user.has_perm(privacy_services.PERM_EXPORT),
                is_open=erasure.state in ErasureRequest.OPEN,
            )
        return super().change_view(request, object_id, form_url, extra_context)

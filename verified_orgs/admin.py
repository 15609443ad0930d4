"""Admin for verified organizations: the compliance review queue and one page per organization.

Transition buttons come from django-fsm's FSMAdminMixin; each asks for a reason
(``fsm_forms``) and goes through the services (permission check, billing,
audit trail, entitlement invalidation), never through ``obj.save()`` alone.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django_fsm.admin import FSMAdminMixin

from monetization import clock
from monetization.changelist import AppendOnlyAdmin, LargeTableAdmin
from monetization.errors import DomainError, staff_message
from verified_orgs import selectors
from verified_orgs.models import (
    Affiliation,
    Organization,
    OrganizationAdmin,
    OrgInvoice,
    OrgInvoiceLine,
    ReviewQueueItem,
    SeatLedgerEntry,
    VerificationApplication,
)
from verified_orgs.services.billing import org_invoice_close, org_invoice_pdf_for_staff
from verified_orgs.services.organizations import (
    EDITABLE_FIELDS,
    STAFF_TRANSITIONS,
    organization_admin_add,
    organization_admin_remove,
    organization_set_seat_limit,
    organization_update,
    verification_application_notes_set,
)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text="Recorded in the audit trail."
    )


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        label="Notes",
        help_text="Review notes; recorded in the audit trail.",
    )


class ConfirmedReasonForm(ReasonForm):
    """A transition that takes the organization's badge or billing away: said on purpose, with a reason."""

    confirm = forms.BooleanField(
        required=True,
        label="I confirm this action",
        help_text="It takes effect at once; undoing it is another review.",
    )


# Transitions that take something away: labelled as such, listed last, and confirmed.
DESTRUCTIVE_TRANSITIONS = {"reject": "Reject…", "suspend": "Suspend…", "cancel": "Cancel organization…"}


class OrganizationAdminInline(admin.TabularInline):
    model = OrganizationAdmin
    extra = 0
    raw_id_fields = ["customer"]
    readonly_fields = ["created_at"]
    verbose_name = "admin"
    verbose_name_plural = "organization admins"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer")


@admin.register(Organization)
class OrganizationModelAdmin(FSMAdminMixin, admin.ModelAdmin):
    fsm_fields = ["state"]
    fsm_forms = {
        "start_review": OptionalReasonForm,
        "verify": OptionalReasonForm,
        "reject": ConfirmedReasonForm,
        "suspend": ConfirmedReasonForm,
        "reinstate": ReasonForm,
        "cancel": ConfirmedReasonForm,
    }

    def get_fsm_label(self, transition) -> str:
        return DESTRUCTIVE_TRANSITIONS.get(transition.name) or super().get_fsm_label(transition)

    change_form_template = "admin/verified_orgs/organization/change_form.html"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "handle", "state", "country", "seat_limit", "submitted_at", "verified_at"]
    list_filter = ["state", "country"]
    search_fields = ["=handle", "=name"]
    show_full_result_count = False
    raw_id_fields = ["billing_customer"]
    fields = [
        "name",
        "handle",
        "website",
        "country",
        "billing_customer",
        "seat_limit",
        "state",
        "state_reason",
        "suspension_cause",
        "subscription_link",
        "submitted_at",
        "verified_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "state",
        "state_reason",
        "suspension_cause",
        "subscription_link",
        "submitted_at",
        "verified_at",
        "created_at",
        "updated_at",
        "billing_customer",
        "handle",
    ]
    inlines = [OrganizationAdminInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("billing_customer", "subscription__plan")

    def has_add_permission(self, request):
        # Organizations apply (organization_apply); staff review them, they do not create them.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="subscription")
    def subscription_link(self, obj):
        if obj.subscription_id is None:
            return "-"
        sub = obj.subscription
        return f"#{sub.pk} {sub.plan.code} - {sub.get_state_display()} - quantity {sub.quantity}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if obj is not None:
            try:
                seats_page = int(request.GET.get("seats_page", 1))
            except ValueError:
                seats_page = 1
            extra_context["org_page"] = selectors.organization_page(organization=obj, seats_page=seats_page)
        extra_context["destructive_transitions"] = list(DESTRUCTIVE_TRANSITIONS)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        """Every edit through its service (permission, lock, audit); nothing saved here."""
        if not change:
            return
        if "seat_limit" in form.changed_data:
            organization_set_seat_limit(
                organization=obj, actor=request.user, seat_limit=obj.seat_limit, reason="set in admin"
            )
        details = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE_FIELDS}
        if details:
            organization_update(organization=obj, actor=request.user, changes=details, reason="edited in admin")

    def save_formset(self, request, form, formset, change):
        """Organization admins are added and removed through the services (audited, badges refreshed)."""
        if formset.model is not OrganizationAdmin:
            return super().save_formset(request, form, formset, change)
        org = form.instance
        # What the admin's change message reads (formset.save() would have set them).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            deleted = inline_form in formset.deleted_forms
            if not inline_form.has_changed() and not deleted:
                continue
            before = inline_form.instance.customer if inline_form.instance.pk else None
            after = inline_form.cleaned_data.get("customer")
            if before is not None and (deleted or after != before):
                organization_admin_remove(organization=org, customer=before, actor=request.user, reason="admin page")
                formset.deleted_objects.append(inline_form.instance)
            if after is not None and not deleted and after != before:
                row = organization_admin_add(organization=org, customer=after, actor=request.user, reason="admin page")
                formset.new_objects.append(row)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, staff_message(exc), level=messages.ERROR)
            return redirect(request.path)

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        """Route the buttons through the services (permissions, billing, audit, badges)."""
        service = STAFF_TRANSITIONS.get(transition_name)
        if service is None:
            self.message_user(request, f"'{transition_name}' is not a staff action.", level=messages.ERROR)
            return False
        try:
            service(obj, request.user, (kwargs or {}).get("reason", ""))
        except DomainError as exc:
            self.message_user(request, f"{transition_name}: {staff_message(exc)}", level=messages.ERROR)
            return False
        self.message_user(request, f"{transition_name.replace('_', ' ').capitalize()}: done.", level=messages.SUCCESS)
        return True


@admin.register(ReviewQueueItem)
class ReviewQueueAdmin(OrganizationModelAdmin):
    """Compliance's queue: applied and in-review organizations, oldest submission first."""

    list_display = ["name", "handle", "state", "submitted_at", "waiting", "documents", "reviewer"]
    list_filter = ["state"]
    ordering = ["submitted_at", "id"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(state__in=Organization.QUEUE_STATES)
            .prefetch_related("applications__reviewer")
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # One page per organization: the queue opens the organization's page (and its buttons).
        return redirect("admin:verified_orgs_organization_change", object_id)

    def _pending(self, obj):
        pending = [a for a in obj.applications.all() if a.decision == VerificationApplication.Decision.PENDING]
        return pending[0] if pending else None

    @admin.display(description="waiting")
    def waiting(self, obj):
        return clock.now() - obj.submitted_at if obj.submitted_at else "-"

    @admin.display(description="documents")
    def documents(self, obj):
        application = self._pending(obj)
        if application is None or not application.documents:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}" rel="noopener" target="_blank">{}</a>',
            ((d.get("url", ""), d.get("label", "document")) for d in application.documents),
        )

    @admin.display(description="reviewer")
    def reviewer(self, obj):
        application = self._pending(obj)
        return application.reviewer if application and application.reviewer else "-"


@admin.register(VerificationApplication)
class VerificationApplicationAdmin(admin.ModelAdmin):
    list_display = ["organization", "submitted_at", "decision", "reviewer", "decided_at"]
    list_filter = ["decision"]
    list_select_related = ["organization", "reviewer"]
    ordering = ["submitted_at"]
    fields = [
        "organization",
        "submitted_at",
        "document_links",
        "applicant_notes",
        "reviewer",
        "review_started_at",
        "review_notes",
        "decision",
        "reason",
        "decided_at",
    ]
    readonly_fields = [f for f in fields if f != "review_notes"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="documents")
    def document_links(self, obj):
        if not obj.documents:
            return "-"
        return format_html_join(
            format_html("<br>"),
            '<a href="{}" rel="noopener" target="_blank">{}</a>',
            ((d.get("url", ""), d.get("label", "document")) for d in obj.documents),
        )

    def save_model(self, request, obj, form, change):
        verification_application_notes_set(application_id=obj.pk, actor=request.user, notes=obj.review_notes)


@admin.register(Affiliation)
class AffiliationAdmin(LargeTableAdmin):
    list_display = ["id", "organization", "customer", "state", "accepted_at", "expires_at", "ended_at"]
    list_filter = ["state"]
    list_select_related = ["organization", "customer"]
    exact_search_fields = ("customer__external_id", "customer__handle", "organization__handle")
    raw_id_fields = ["organization", "customer", "invited_by"]
    readonly_fields = [f.name for f in Affiliation._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SeatLedgerEntry)
class SeatLedgerEntryAdmin(AppendOnlyAdmin, LargeTableAdmin):
    list_display = ["id", "organization", "at", "delta", "quantity", "reason", "payment"]
    list_filter = ["reason"]
    list_select_related = ["organization"]
    exact_search_fields = ("organization__handle",)
    readonly_fields = [f.name for f in SeatLedgerEntry._meta.fields]


class OrgInvoiceLineInline(admin.TabularInline):
    model = OrgInvoiceLine
    extra = 0
    fields = ["kind", "description", "quantity", "amount"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OrgInvoice)
class OrgInvoiceAdmin(FSMAdminMixin, AppendOnlyAdmin):
    """Read-only, but for Finance's two buttons on an open invoice: void, mark uncollectible."""

    fsm_fields = ["status"]
    fsm_forms = {"void": ReasonForm, "mark_uncollectible": ReasonForm}
    change_form_template = "admin/verified_orgs/orginvoice/change_form.html"
    list_display = ["number", "organization", "status", "period_end", "total", "currency", "pdf_link"]
    list_filter = ["status"]
    list_select_related = ["organization"]
    search_fields = ["=organization__handle", "=number"]
    readonly_fields = [
        "number",
        "status",
        "organization",
        "period_start",
        "period_end",
        "currency",
        "total",
        "tax",
        "vat_id",
        "provider_invoice_id",
        "payment",
        "issued_at",
        "paid_at",
        "created_at",
        "updated_at",
        "pdf_link",
    ]
    inlines = [OrgInvoiceLineInline]

    def get_urls(self):
        return [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="verified_orgs_orginvoice_pdf",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="PDF")
    def pdf_link(self, obj):
        if not obj.number:
            return "-"
        return format_html(
            '<a href="{}">{}.pdf</a>', reverse("admin:verified_orgs_orginvoice_pdf", args=[obj.pk]), obj.number
        )

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        """The buttons go through the service (Stripe first, permission, audit)."""
        try:
            org_invoice_close(
                invoice=obj, transition=transition_name, actor=request.user, reason=(kwargs or {}).get("reason", "")
            )
        except DomainError as exc:
            self.message_user(request, f"{transition_name}: {staff_message(exc)}", level=messages.ERROR)
            return False
        self.message_user(request, f"{transition_name.replace('_', ' ').capitalize()}: done.", level=messages.SUCCESS)
        return True

    def pdf_view(self, request, pk: int):
        try:
            invoice, pdf = org_invoice_pdf_for_staff(invoice_id=pk, actor=request.user)
        except DomainError as exc:
            return HttpResponseForbidden(exc.detail)
        except OrgInvoice.DoesNotExist:
            raise Http404("No such issued invoice.") from None
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
        return response

"""Finance's reconciliation queue: provider reports imported, and the mismatches they left until resolved.

Thin: an upload form that calls :func:`provider_report_import` and a resolve form that calls
:func:`mismatch_resolve` (both check the permission again and write the audit trail).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from monetization.changelist import AppendOnlyAdmin
from monetization.errors import DomainError, staff_message
from monetization.exports import CsvExportMixin
from monetization.models import ProviderReport, ReconciliationMismatch
from monetization.services.reconciliation import mismatch_resolve, provider_report_import, report_kinds

MAX_REPORT_BYTES = 200 * 1024 * 1024


class ReportUploadForm(forms.Form):
    kind = forms.ChoiceField(choices=[])
    file = forms.FileField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(name, name) for name, _ in report_kinds.items()]


class ResolveForm(forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


@admin.register(ProviderReport)
class ProviderReportAdmin(AppendOnlyAdmin):
    list_display = ("id", "provider", "kind", "name", "matched", "mismatches", "imported_at")
    list_filter = ("provider", "kind")

    def get_urls(self):
        view = self.admin_site.admin_view(self.upload_view)
        return [path("upload/", view, name="monetization_providerreport_upload"), *super().get_urls()]

    def upload_view(self, request):
        if not request.user.has_perm("monetization.add_providerreport"):
            raise DjangoPermissionDenied
        form = ReportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_REPORT_BYTES:
                messages.error(request, "The file is larger than a provider report can be.")
            else:
                try:
                    report, created = provider_report_import(
                        actor=request.user, kind=form.cleaned_data["kind"], name=upload.name, content=upload.read()
                    )
                except DomainError as exc:
                    messages.error(request, staff_message(exc))
                else:
                    verb = "Imported" if created else "Already imported"
                    messages.success(
                        request,
                        f"{verb}: {report.lines} lines, {report.matched} matched, {report.mismatches} mismatches.",
                    )
                    url = reverse("admin:monetization_reconciliationmismatch_changelist")
                    return HttpResponseRedirect(f"{url}?report__id__exact={report.pk}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a provider report",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/monetization/providerreport/upload.html", context)


@admin.register(ReconciliationMismatch)
class ReconciliationMismatchAdmin(CsvExportMixin, AppendOnlyAdmin):
    list_display = ("reference", "provider", "kind", "currency", "ours", "theirs", "status")
    list_filter = ("status", "provider", "kind")
    search_fields = ("=reference",)
    csv_columns = (
        "id",
        "report_id",
        "provider",
        "reference",
        "line_kind",
        "kind",
        "currency",
        "ours",
        "theirs",
        "status",
        "resolution",
        "resolved_by__username",
        "resolved_at",
    )
    change_form_template = "admin/monetization/reconciliationmismatch/change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.resolve_view)
        return [path("<int:pk>/resolve/", view, name="monetization_mismatch_resolve"), *super().get_urls()]

    def resolve_view(self, request, pk):
        here = reverse("admin:monetization_reconciliationmismatch_change", args=[pk])
        if request.method != "POST":
            return HttpResponseRedirect(here)
        form = ResolveForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Say what was found and done: the resolution is recorded.")
            return HttpResponseRedirect(here)
        try:
            mismatch_resolve(actor=request.user, mismatch_id=pk, resolution=form.cleaned_data["resolution"])
        except DomainError as exc:
            messages.error(request, staff_message(exc))
        else:
            messages.success(request, "Resolved.")
        return HttpResponseRedirect(here)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "resolve_form": ResolveForm(),
            "can_resolve": request.user.has_perm("monetization.resolve_reconciliationmismatch"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

"""CSV exports of the admin lists Finance works from, streamed, filtered like the list on screen.

An admin that mixes in :class:`CsvExportMixin` and names its ``csv_columns`` (field paths, with
``__`` across relations) gets ``<changelist>/export.csv``: the list's own filters and search
(the changelist's queryset, so what is exported is what the list shows), read in primary-key
order a chunk at a time (keyset, never OFFSET) and written as it is read, so a million rows
start downloading at once and never sit in memory. The rows come from the read replica when
there is one (monetization/db_routing.py). Each export is recorded in the audit trail
(who, which list, which filters), in the transaction of its first chunk.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import path

from monetization import clock
from monetization.db_routing import read_alias, reads_from_replica
from monetization.services.audit import audit_record

EXPORT_PERMISSION = "monetization.view_journalentry"  # who reads the books (Finance) exports them
CHUNK = 5000


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(queryset: QuerySet, columns: Sequence[str], *, chunk: int = CHUNK) -> Iterator[list]:
    """Header then one row per object, in primary-key order, ``chunk`` rows per query."""
    yield list(columns)
    last = None
    base = queryset.order_by("pk")
    while True:
        page = base if last is None else base.filter(pk__gt=last)
        rows = list(page.values_list("pk", *columns)[:chunk])
        if not rows:
            return
        for row in rows:
            yield ["" if value is None else value for value in row[1:]]
        last = rows[-1][0]


def csv_response(rows: Iterator[list], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class CsvExportMixin:
    """``export.csv`` beside an admin changelist (see the module docstring); ``csv_columns`` required."""

    csv_columns: Sequence[str] = ()
    # Any one of these lets a viewer of the list export it (Finance by default; the audit trail adds Compliance).
    csv_export_permissions: Sequence[str] = (EXPORT_PERMISSION,)
    change_list_template = "admin/csv_export_change_list.html"

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_export_csv"
        return [path("export.csv", self.admin_site.admin_view(self.export_csv_view), name=name), *super().get_urls()]

    def csv_export_allowed(self, user) -> bool:
        return any(user.has_perm(perm) for perm in self.csv_export_permissions)

    def export_csv_view(self, request):
        if not self.csv_export_allowed(request.user) or not self.has_view_permission(request):
            raise PermissionDenied
        with reads_from_replica():
            changelist = self.get_changelist_instance(request)
            # Bound to the replica here: the rows are read as the response streams, after this view returns.
            queryset = changelist.get_queryset(request).using(read_alias())
        audit_record(
            action="export.csv",
            object_type=self.opts.label_lower,
            actor=request.user,
            after={"filters": request.GET.dict(), "columns": list(self.csv_columns)},
        )
        filename = f"{self.opts.model_name}s-{clock.now():%Y%m%d-%H%M%S}.csv"
        return csv_response(csv_rows(queryset, self.csv_columns), filename)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "csv_export_allowed": self.csv_export_allowed(request.user)}
        return super().changelist_view(request, extra_context)

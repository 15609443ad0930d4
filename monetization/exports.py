"""CSV and XLSX exports of the admin lists Finance works from, streamed, filtered like the list on screen.

An admin that mixes in :class:`CsvExportMixin` and names its ``csv_columns`` (field paths, with
``__`` across relations) gets ``<changelist>/export.csv`` and ``export.xlsx``: the list's own
filters and search (the changelist's queryset, so what is exported is what the list shows), read
in primary-key order a chunk at a time (keyset, never OFFSET). The CSV is written as it is read, so
a million rows start downloading at once and never sit in memory; the XLSX is written the same way
by openpyxl's write-only workbook into a temporary file (a zip is only whole once closed), then
streamed from it. The rows come from the read replica when there is one (monetization/db_routing.py).
Each export is recorded in the audit trail (who, which list, which filters), in the transaction of its
first chunk.

An admin that also names its ``close_pack_date_field`` is part of the monthly close pack
(:func:`close_pack_write`): its rows of the month, as CSV and XLSX, in ``FINANCE_CLOSE_PACK_DIR``.
"""

from __future__ import annotations

import csv
import datetime
import tempfile
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.urls import path
from openpyxl import Workbook

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


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value):
    # Excel has no time zones: instants are written in UTC, as the CSV's ISO strings say them.
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    if isinstance(value, Decimal | int | float | datetime.date | str) or value is None:
        return value
    return str(value)


def xlsx_write(rows: Iterator[list], out: IO[bytes], *, title: str = "export", progress=None) -> int:
    """Write ``rows`` (header first) as one sheet into ``out``, a row at a time; returns the data rows."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    count = -1
    for count, row in enumerate(rows):
        sheet.append([_cell(value) for value in row])
        if progress and count and count % CHUNK == 0:
            progress(count)
    book.save(out)
    return max(count, 0)


def xlsx_response(rows: Iterator[list], filename: str, *, title: str) -> FileResponse:
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it when the download ends)
    xlsx_write(rows, spool, title=title)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=filename, content_type=XLSX_TYPE)


class CsvExportMixin:
    """``export.csv`` and ``export.xlsx`` beside an admin changelist (see the module docstring);
    ``csv_columns`` required."""

    csv_columns: Sequence[str] = ()
    # Its rows of a month go into the monthly close pack, by this date or instant field (empty: not in it).
    close_pack_date_field: str = ""
    # Any one of these lets a viewer of the list export it (Finance by default; the audit trail adds Compliance).
    csv_export_permissions: Sequence[str] = (EXPORT_PERMISSION,)
    change_list_template = "admin/csv_export_change_list.html"

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_export_csv"
        return [
            path("export.csv", self.admin_site.admin_view(self.export_csv_view), name=name),
            path("export.xlsx", self.admin_site.admin_view(self.export_xlsx_view), name=name.replace("_csv", "_xlsx")),
            *super().get_urls(),
        ]

    def csv_export_allowed(self, user) -> bool:
        return any(user.has_perm(perm) for perm in self.csv_export_permissions)

    def _export_queryset(self, request, fmt: str) -> QuerySet:
        if not self.csv_export_allowed(request.user) or not self.has_view_permission(request):
            raise PermissionDenied
        with reads_from_replica():
            changelist = self.get_changelist_instance(request)
            # Bound to the replica here: the rows are read as the response streams, after this view returns.
            queryset = changelist.get_queryset(request).using(read_alias())
        audit_record(
            action=f"export.{fmt}",
            object_type=self.opts.label_lower,
            actor=request.user,
            after={"filters": request.GET.dict(), "columns": list(self.csv_columns)},
        )
        return queryset

    def export_csv_view(self, request):
        queryset = self._export_queryset(request, "csv")
        filename = f"{self.opts.model_name}s-{clock.now():%Y%m%d-%H%M%S}.csv"
        return csv_response(csv_rows(queryset, self.csv_columns), filename)

    def export_xlsx_view(self, request):
        queryset = self._export_queryset(request, "xlsx")
        filename = f"{self.opts.model_name}s-{clock.now():%Y%m%d-%H%M%S}.xlsx"
        return xlsx_response(csv_rows(queryset, self.csv_columns), filename, title=f"{self.opts.model_name}s")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "csv_export_allowed": self.csv_export_allowed(request.user)}
        return super().changelist_view(request, extra_context)


# --- the monthly close pack -----------------------------------------------------------------------

ClosePackProgress = Callable[[str, int], None]


def month_bounds(month: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    first = month.replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    return (
        datetime.datetime.combine(first, datetime.time(), tzinfo=datetime.UTC),
        datetime.datetime.combine(following, datetime.time(), tzinfo=datetime.UTC),
    )


def close_pack_exports(admin_site) -> list:
    """The admin lists in the close pack: those naming a ``close_pack_date_field``, by model label."""
    found = [
        model_admin
        for model_admin in admin_site._registry.values()
        if isinstance(model_admin, CsvExportMixin) and model_admin.close_pack_date_field
    ]
    return sorted(found, key=lambda a: a.opts.label_lower)


def close_pack_write(
    *, admin_site, month: datetime.date, directory: Path, actor, progress: ClosePackProgress | None = None
) -> list[Path]:
    """Write each close-pack list's rows of ``month`` (UTC) as CSV and XLSX into ``directory/YYYY-MM/``.

    Files are written under a temporary name and renamed when whole: a crash leaves no half file
    under a final name, and writing the month again replaces the pack. Audited (``export.close_pack``).
    """
    since, until = month_bounds(month)
    folder = Path(directory) / f"{since:%Y-%m}"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for model_admin in close_pack_exports(admin_site):
        field = model_admin.close_pack_date_field
        queryset = model_admin.model._default_manager.filter(**{f"{field}__gte": since, f"{field}__lt": until})
        name = f"{model_admin.opts.model_name}s-{since:%Y-%m}"
        columns = model_admin.csv_columns
        csv_path, xlsx_path = folder / f"{name}.csv", folder / f"{name}.xlsx"
        partial = csv_path.with_suffix(".csv.part")
        with partial.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            for count, row in enumerate(csv_rows(queryset, columns)):
                writer.writerow(row)
                if progress and count and count % CHUNK == 0:
                    progress(name, count)
        partial.replace(csv_path)
        partial = xlsx_path.with_suffix(".xlsx.part")
        with partial.open("wb") as out:
            rows = xlsx_write(
                csv_rows(queryset, columns),
                out,
                title=f"{model_admin.opts.model_name}s",
                progress=(lambda n, name=name: progress(name, n)) if progress else None,
            )
        partial.replace(xlsx_path)
        if progress:
            progress(name, rows)
        written += [csv_path, xlsx_path]
    audit_record(
        action="export.close_pack",
        object_type="monetization.journalentry",
        actor=actor,
        after={"month": f"{since:%Y-%m}", "files": [p.name for p in written]},
    )
    return written

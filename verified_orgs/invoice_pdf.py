"""An organization invoice (or credit note) as a PDF: what org admins and Finance download.

Rendered with fpdf2's core fonts (Latin-1); text outside it is replaced, never an error.
"""

from __future__ import annotations

from decimal import Decimal

from fpdf import FPDF

from verified_orgs.models import OrgInvoice


def _text(value) -> str:
    return str(value).encode("latin-1", "replace").decode("latin-1")


def _amount(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def invoice_pdf(invoice: OrgInvoice) -> bytes:
    org = invoice.organization
    cur = str(invoice.currency)
    pdf = FPDF(format="A4")
    pdf.set_compression(False)  # a page or two of text: left readable (and searchable) as it is
    pdf.set_title(f"Invoice {invoice.number}")
    pdf.set_creator("backoffice")
    pdf.set_creation_date(invoice.issued_at or invoice.created_at)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, _text(f"Invoice {invoice.number or '(draft)'}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    rows = [
        ("Status", invoice.get_status_display()),
        ("Organization", f"{org.name} (@{org.handle})"),
        ("Country", org.country),
        ("VAT id", invoice.vat_id or "-"),
        ("Period", f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"),
        ("Issued", f"{invoice.issued_at:%Y-%m-%d}" if invoice.issued_at else "-"),
        ("Paid", f"{invoice.paid_at:%Y-%m-%d}" if invoice.paid_at else "-"),
    ]
    for label, value in rows:
        pdf.cell(40, 6, _text(label))
        pdf.cell(0, 6, _text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(120, 7, "Description", border="B")
    pdf.cell(20, 7, "Qty", border="B", align="R")
    pdf.cell(0, 7, "Amount", border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    for line in invoice.lines.all():
        pdf.cell(120, 6, _text(line.description[:80]))
        pdf.cell(20, 6, str(line.quantity), align="R")
        pdf.cell(0, 6, _amount(line.amount, cur), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(140, 8, "Tax", border="T")
    pdf.cell(0, 8, _amount(invoice.tax, cur), border="T", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(140, 8, "Total")
    pdf.cell(0, 8, _amount(invoice.total, cur), align="R", new_x="LMARGIN", new_y="NEXT")
    for note in invoice.credit_notes.all():
        pdf.set_font("helvetica", size=10)
        pdf.cell(140, 6, _text(f"Credit note {note.number} ({note.get_reason_display()})"))
        pdf.cell(0, 6, _amount(-note.amount, cur), align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

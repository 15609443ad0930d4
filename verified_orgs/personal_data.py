"""Organizations' part of personal data requests.

An organization is a legal entity: its name, handle, VAT id and its invoices are its own data and
the tax record, exported to the person who bills or administers it but not pseudonymized when
that person is erased. What erasure rewrites here is free text a person may be named in.
"""

from __future__ import annotations

from monetization.personal_data import source

ORG_PATHS = ("billing_customer", "admins__customer")


def register() -> None:
    source(
        "verified_orgs.Organization",
        customer_paths=ORG_PATHS,
        personal_fields=("state_reason", "suspension_cause"),
    )
    source("verified_orgs.OrganizationAdmin", customer_paths=("customer",))
    source(
        "verified_orgs.VerificationApplication",
        customer_paths=tuple(f"organization__{p}" for p in ORG_PATHS),
        personal_fields=("applicant_notes", "review_notes", "reason"),
    )
    source(
        "verified_orgs.Affiliation",
        customer_paths=("customer", "invited_by"),
        personal_fields=(),
        exclude_fields=("token_hash",),
    )
    # Append-only (its own trigger) and holds no free text: exported only.
    source(
        "verified_orgs.SeatLedgerEntry",
        customer_paths=("affiliation__customer", "payment__customer"),
        personal_fields=(),
    )
    source(
        "verified_orgs.OrgInvoice",
        customer_paths=("payment__customer", *(f"organization__{p}" for p in ORG_PATHS)),
        personal_fields=(),
    )
    source(
        "verified_orgs.OrgInvoiceLine",
        customer_paths=(
            "invoice__payment__customer",
            "seat_ledger_entry__affiliation__customer",
            *(f"invoice__organization__{p}" for p in ORG_PATHS),
        ),
        personal_fields=(),
    )
    source(
        "verified_orgs.OrgCreditNote",
        customer_paths=("invoice__payment__customer", *(f"invoice__organization__{p}" for p in ORG_PATHS)),
        personal_fields=("reason", "memo"),
    )

"""Stable error codes of the verified organizations API (clients switch on these; add, never rename)."""

from monetization.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied


class OrgErrorCode:
    ORG_NOT_FOUND = "org_not_found"
    ORG_NOT_VERIFIED = "org_not_verified"
    ORG_PLAN_MISSING = "org_plan_missing"
    ORG_PRICE_MISSING = "org_price_missing"
    NOT_ORG_ADMIN = "not_org_admin"
    ACTING_CUSTOMER_REQUIRED = "acting_customer_required"
    ACTING_CUSTOMER_NOT_FOUND = "acting_customer_not_found"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    SEAT_LIMIT_REACHED = "seat_limit_reached"
    ALREADY_AFFILIATED = "already_affiliated"
    AFFILIATION_NOT_FOUND = "affiliation_not_found"
    INVITATION_NOT_FOUND = "invitation_not_found"
    INVITATION_NOT_FOR_CUSTOMER = "invitation_not_for_customer"
    INVITATION_EXPIRED = "invitation_expired"
    REASON_REQUIRED = "reason_required"
    HANDLE_TAKEN = "handle_taken"


def org_not_found(detail: str = "No such organization.") -> DomainError:
    return NotFound(detail, code=OrgErrorCode.ORG_NOT_FOUND)


def not_org_admin() -> DomainError:
    return PermissionDenied(
        "The acting customer is not an admin of this organization.", code=OrgErrorCode.NOT_ORG_ADMIN
    )


def org_not_verified(state: str) -> DomainError:
    return Conflict(f"The organization is {state}, not verified.", code=OrgErrorCode.ORG_NOT_VERIFIED)


def reason_required() -> DomainError:
    return InvalidInput("A reason is required.", code=OrgErrorCode.REASON_REQUIRED)

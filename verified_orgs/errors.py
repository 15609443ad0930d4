"""The verified organizations' refusals, built on the codes in monetization.errors."""

from monetization.errors import Conflict, DomainError, NotFound, OrgErrorCode, PermissionDenied


def org_not_found(detail: str = "No such organization.") -> DomainError:
    return NotFound(detail, code=OrgErrorCode.ORG_NOT_FOUND)


def not_org_admin() -> DomainError:
    return PermissionDenied(
        "The acting customer is not an admin of this organization.", code=OrgErrorCode.NOT_ORG_ADMIN
    )


def org_not_verified(state: str) -> DomainError:
    return Conflict(f"The organization is {state}, not verified.", code=OrgErrorCode.ORG_NOT_VERIFIED)

"""Beat tasks of verified organizations: thin wrappers over set-based services."""

from celery import shared_task

from verified_orgs.services.affiliations import affiliations_expire_due
from verified_orgs.services.billing import orgs_grace_sweep


@shared_task(name="verified_orgs.expire_invitations")
def expire_invitations() -> int:
    """Expire invitations not accepted within 7 days (idempotent: safe to re-run)."""
    return affiliations_expire_due()


@shared_task(name="verified_orgs.grace_sweep")
def grace_sweep() -> int:
    """Suspend organizations whose payment grace period ended unpaid."""
    return orgs_grace_sweep()

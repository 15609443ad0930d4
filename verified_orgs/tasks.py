"""Beat tasks of verified organizations: thin wrappers over set-based services."""

from celery import shared_task

from verified_orgs.services.affiliations import affiliations_expire_due


@shared_task(name="verified_orgs.expire_invitations")
def expire_invitations() -> int:
    """Expire invitations not accepted within 7 days (idempotent: safe to re-run)."""
    return affiliations_expire_due()

"""Staff actions on outbound event delivery: register endpoints, rotate secrets, replay deliveries.

Endpoints receive everything a customer's money does, so only superusers manage them; every action is
audited in its transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models.functions import Now

from monetization import clock
from monetization.errors import InvalidInput, PermissionDenied
from monetization.event_catalogue import CATALOGUE
from monetization.models import EventDelivery, EventEndpoint
from monetization.reasons import reason_check
from monetization.services.audit import audit_record

ENDPOINT_FIELDS = ["url", "event_types", "enabled"]


def endpoint_secret_generate() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def _require_superuser(user) -> None:
    if not getattr(user, "is_superuser", False):
        raise PermissionDenied("Only a superuser manages event endpoints and their deliveries.")


def event_endpoint_create(*, user, url: str, event_types: list[str], description: str = "") -> EventEndpoint:
    _require_superuser(user)
    unknown = sorted(set(event_types) - set(CATALOGUE))
    if unknown:
        raise InvalidInput(f"Unknown event types: {', '.join(unknown)}.")
    with transaction.atomic():
        endpoint = EventEndpoint(
            url=url, event_types=event_types, description=description, secret=endpoint_secret_generate()
        )
        endpoint.full_clean()
        endpoint.save()
        audit_record(action="event_endpoint.create", obj=endpoint, actor=user, after={"url": url, "types": event_types})
    return endpoint


def event_endpoint_rotate_secret(*, user, endpoint: EventEndpoint, overlap: timedelta = timedelta(hours=24)) -> str:
    """A new secret signs from now on; the old one signs too until ``overlap`` has passed."""
    _require_superuser(user)
    with transaction.atomic():
        locked = EventEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = clock.now() + overlap
        locked.secret = endpoint_secret_generate()
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
        audit_record(
            action="event_endpoint.rotate_secret",
            obj=locked,
            actor=user,
            after={"previous_secret_expires_at": locked.previous_secret_expires_at},
        )
    return locked.secret


def event_deliveries_replay(*, user, delivery_ids: list[int], reason: str, at: datetime | None = None) -> int:
    """Send the chosen deliveries again (parked, failed or already delivered), with the same event id."""
    _require_superuser(user)
    reason_check(reason, what="A replay")
    with transaction.atomic():
        ids = list(EventDelivery.objects.select_for_update().filter(pk__in=delivery_ids).values_list("pk", flat=True))
        EventDelivery.objects.filter(pk__in=ids).update(
            # The database's clock, as delivery reads it; a fresh three days of retries.
            status=EventDelivery.Status.PENDING,
            attempts=0,
            next_attempt_at=at or Now(),
            created_at=Now(),
        )
        for delivery_id in ids:
            audit_record(
                action="event_delivery.replay",
                object_type=EventDelivery._meta.label_lower,
                object_id=delivery_id,
                actor=user,
                reason=reason,
            )
    return len(ids)

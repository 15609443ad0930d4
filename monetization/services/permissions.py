"""Who may change what: the one permission check every service makes.

A service is called by a staff member (a Django user, whose permissions the staff roles
grant) or on behalf of no person at all: a schedule, an operator's command, the demo seed.
The second kind must say so, with a :class:`System` naming the cause, which the audit trail
records. No actor at all is refused: an actor someone forgot to pass is never a licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monetization.errors import PermissionDenied


@dataclass(frozen=True)
class System:
    """A change no staff member asked for, named for the audit trail (``task:cycle_compute``,
    ``eligibility re-evaluation``, ``demo seed``)."""

    label: str
    # Read like an anonymous user where a user is expected (``computed_by``, ``placed_by`` stay empty).
    is_authenticated: ClassVar[bool] = False

    def __post_init__(self):
        if not self.label.strip():
            raise ValueError("A system cause needs a label.")


def require_perm(actor, perm: str, *, or_perm: str | None = None) -> None:
    """Refuse unless ``actor`` is a stated :class:`System` cause or a signed-in user holding ``perm``
    (or ``or_perm``, where either of two permissions allows the change)."""
    if isinstance(actor, System):
        return
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied(f"This needs a signed-in staff member with the '{perm}' permission.")
    if actor.has_perm(perm) or (or_perm is not None and actor.has_perm(or_perm)):
        return
    needed = f"'{perm}' or '{or_perm}'" if or_perm else f"'{perm}'"
    raise PermissionDenied(f"This needs the {needed} permission.")

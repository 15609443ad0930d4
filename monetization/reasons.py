"""The one check of a staff member's reason, whatever the action: present where the action needs one,
and short enough to read (a pasted 100,000-character reason is a mistake, and it is shown on every list)."""

from __future__ import annotations

from monetization.errors import ErrorCode, InvalidInput

REASON_MAX_LENGTH = 2000


def reason_check(reason: str | None, *, required: bool = True, what: str = "This action") -> str:
    """``reason`` unchanged when acceptable; else :class:`InvalidInput` with ``reason_required`` or
    ``reason_too_long`` (nothing has been written yet: services call this first)."""
    text = reason or ""
    if required and not text.strip():
        raise InvalidInput(f"{what} needs a reason.", code=ErrorCode.REASON_REQUIRED)
    if len(text) > REASON_MAX_LENGTH:
        raise InvalidInput(
            f"A reason is at most {REASON_MAX_LENGTH:,} characters; this one has {len(text):,}.",
            code=ErrorCode.REASON_TOO_LONG,
            extra={"max_length": REASON_MAX_LENGTH},
        )
    return text

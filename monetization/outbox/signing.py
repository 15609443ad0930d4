"""Delivery signatures, the way Stripe signs its webhooks.

Header ``Backoffice-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``: each ``v1`` is
HMAC-SHA256 over ``"<t>." + body`` with one of the endpoint's live secrets (two while a secret is
being rotated). A receiver accepts the delivery when one ``v1`` matches one of its secrets and
``t`` is within its tolerance (default 300 s), which refuses replays of an old capture.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Backoffice-Signature"
DEFAULT_TOLERANCE = 300


def signature_header(body: bytes, secrets: list[str], *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + body
    macs = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets if s]
    return ",".join([f"t={t}", *(f"v1={mac}" for mac in macs)])


# The same check as the README's verification snippet (tests run the README's copy on real deliveries).
def signature_verify(body: bytes, header: str, secret: str, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    timestamps = [v for k, v in parts if k == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    t = int(timestamps[0])
    if abs(time.time() - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")

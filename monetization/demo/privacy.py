"""Demo: the Compliance erasure queue, one request overdue and one fresh, on demo customers
who have subscriptions (so executing one shows what is cancelled and what the customer must do).

Requests only: executing one is left to whoever explores the demo. Idempotent: skips when
any erasure request exists.
"""

from __future__ import annotations

import datetime

from django.db.models import Count

from monetization import clock
from monetization.demo.support import staff
from monetization.models import Customer, ErasureRequest
from monetization.services.privacy import erasure_request_create


def seed(*, rng, out, options) -> None:
    if ErasureRequest.objects.exists():
        out.write("  erasure requests already seeded")
        return
    support, _finance, compliance, _admin = staff()
    if support is None or compliance is None:
        out.write("  no demo staff logins; skipping erasure requests")
        return
    customers = list(Customer.objects.annotate(n=Count("payments")).filter(n__gt=0).order_by("-n", "id")[:2])
    if len(customers) < 2:
        out.write("  no demo customers with payments yet; skipping erasure requests")
        return
    overdue, fresh = customers
    late = erasure_request_create(
        customer=overdue, actor=support, reason="[demo] e-mail to privacy@, ticket #5120 (answer is late)"
    )
    # Received 35 days ago: past the 30-day deadline, at the top of the queue.
    received = clock.now() - datetime.timedelta(days=35)
    ErasureRequest.objects.filter(pk=late.pk).update(
        requested_at=received, due_at=received + datetime.timedelta(days=30)
    )
    erasure_request_create(customer=fresh, actor=compliance, reason="[demo] in-app request, ticket #5177")
    out.write(f"  erasure requests: #{late.pk} overdue (@{overdue.handle}), one new (@{fresh.handle})")

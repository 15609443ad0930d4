"""Random Stripe histories, delivered as Stripe does (signed, shuffled, repeated, late) to a live server and
a real worker, end where Stripe's own book says and where in-order delivery ends.

``STRIPE_SIM_HISTORIES`` histories (CI: a few hundred; ``make soak``: thousands), seeded by
``STRIPE_SIM_SEED``. Each history runs twice under two namespaces: once in Stripe's order, once
shuffled with duplicates in waves. At the end, for every customer: subscription state, plan, period,
auto-renew, entitlements, payments, refunds (by re_ id), disputes, and the ledger by account
(captured, fees, refunded, disputed, dispute fees, cash) equal the simulator's book, and the two runs
equal each other.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from monetization.models import Customer, Dispute, Payment, Refund
from monetization.money import money_from_minor
from monetization.providers.base import reset_providers
from monetization.services.refunds import refund_request
from subscriptions.models import Plan

from .harness import (
    BatchOutcome,
    Stopwatch,
    assert_none_failed,
    customers_books,
    deliver_interleaved,
    settle,
    soak_batches,
    strip,
)
from .stripe_sim import MONTH, StripeHistory, write_book

HISTORIES = int(os.environ.get("STRIPE_SIM_HISTORIES", "100"))
SEED = int(os.environ.get("STRIPE_SIM_SEED", "20261130"))
BOOK = Path(tempfile.gettempdir()) / f"stripe-sim-book-{os.getpid()}.json"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.worker_env(
        PAYMENT_PROVIDER_STRIPE="monetization.demo.providers.StripeBookDouble",
        STRIPE_DOUBLE_BOOK=str(BOOK),
    ),
    pytest.mark.timeout(int(os.environ.get("STRIPE_SIM_TIMEOUT", "900"))),
]


def _histories(now: int, first: int, count: int) -> list[tuple[StripeHistory, StripeHistory]]:
    """Histories ``first`` .. ``first + count - 1`` of the seeded sequence (a batch draws the same ones
    whatever the batch size)."""
    rng = random.Random(SEED)
    pairs = []
    for i in range(first + count):
        seed, months, offset = rng.randrange(2**32), rng.randint(1, 8), rng.randint(0, MONTH)
        if i < first:
            continue
        start = now - months * MONTH - offset
        pair = tuple(
            StripeHistory(ns=f"{mode}{i:05d}q", rng=random.Random(seed), t=start).walk(months=months)
            for mode in ("o", "s")
        )
        pairs.append(pair)
    return pairs


def _cents(value) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


def _ours(histories: list[StripeHistory], keys_by_plan: dict[str, list[str]]) -> dict[str, dict]:
    """Our books for the histories' customers, in the simulator's words, by the history's namespace."""
    ids = {h.external_id: h.ns for h in histories}
    held = customers_books(ids)
    refunds, disputes = defaultdict(list), defaultdict(list)
    for external_id, refund_id, amount in Refund.objects.filter(
        customer__external_id__in=list(ids), status=Refund.Status.SUCCEEDED
    ).values_list("customer__external_id", "provider_refund_id", "amount"):
        refunds[external_id].append((refund_id, str(amount.quantize(Decimal("0.01")))))
    for external_id, dispute_id, status in Dispute.objects.filter(customer__external_id__in=list(ids)).values_list(
        "customer__external_id", "provider_dispute_id", "status"
    ):
        disputes[external_id].append((dispute_id, status))
    ours = {}
    for external_id, ns in ids.items():
        books = held[external_id]
        [(_provider, _sub, plan, state, period_end, auto_renew)] = books["subscriptions"]
        ours[ns] = {
            "state": state,
            "plan": plan,
            "period_end": int(period_end.timestamp()),
            "auto_renew": auto_renew,
            "entitled": books["entitlements"] == keys_by_plan[plan] and bool(books["entitlements"]),
            "payments": sorted((p[1], _cents(p[3]), _cents(p[6])) for p in books["payments"]),
            "refunds": sorted(refunds[external_id]),
            "disputes": sorted(disputes[external_id]),
            "ledger": {k: str(Decimal(v).quantize(Decimal("0.01"))) for k, v in books["ledger"].items()},
        }
    return ours


def _normal(expected: dict) -> dict:
    return {
        **expected,
        "payments": [(i, _cents(a), _cents(r)) for i, a, r in expected["payments"]],
        "ledger": {k: str(Decimal(v).quantize(Decimal("0.01"))) for k, v in expected["ledger"].items()},
    }


def test_random_stripe_histories_converge_on_stripes_book(
    soak_workers, soak_server, catalog, settings, monkeypatch, django_user_model
):
    # Staff refunds in this process reach the same book the worker reads.
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "stripe": "monetization.demo.providers.StripeBookDouble",
    }
    settings.REFUND_APPROVAL_MAX_PER_CUSTOMER_30D = 10_000
    # Deliveries are signed when the histories are made; a long run (make soak) sends the last ones
    # long after: the signatures stay real, the accepted age covers the run.
    settings.STRIPE_WEBHOOK_TOLERANCE = 24 * 3600
    monkeypatch.setenv("STRIPE_DOUBLE_BOOK", str(BOOK))
    reset_providers()
    now = int(time.time())
    staff = django_user_model.objects.create_superuser("support-sim", password="x")
    keys_by_plan = {
        plan.code: sorted(plan.product.entitlements.values_list("key", flat=True))
        for plan in Plan.objects.select_related("product")
    }
    steps: set[str] = set()
    settle_timeout = float(os.environ.get("STRIPE_SIM_SETTLE", "600"))
    server = soak_server()  # after the settings above: it runs with them

    def run_batch(first: int, count: int) -> BatchOutcome:
        watch = Stopwatch()
        pairs = _histories(now, first, count)
        # The book holds this batch only: the double rewrites it on every staff refund.
        write_book(BOOK, [h for pair in pairs for h in pair])
        Customer.objects.bulk_create(
            Customer(
                external_id=h.external_id, handle=h.external_id, email=f"{h.external_id}@example.com", country="US"
            )
            for pair in pairs
            for h in pair
        )
        ordered = [d for o, _s in pairs for d in o.deliveries()]
        shuffled = [d for _o, s in pairs for d in s.deliveries()]
        with watch("send"):
            in_order, report = deliver_interleaved(
                server, ordered, shuffled, rng=random.Random(SEED + first), repeat=0.3, waves=4
            )
        watch.paused(report)
        assert in_order.all_accepted and report.all_accepted
        with watch("drain"):
            settle(timeout=settle_timeout, quiet=2.0)
        assert_none_failed()
        # Support refunds some payments (partial or full, keeping access or ending it); Stripe echoes each refund.
        echoes = {"o": [], "s": []}
        refunding = time.monotonic()
        planned = [(h, plan) for pair in pairs for h in pair if (plan := h.staff_refund_plan()) is not None]

        def refund_some(share: list) -> list:
            """One support agent's share of the refunds: (history, refund id, amount, revoke) each."""
            try:
                done = []
                for history, (invoice_id, amount, revoke) in share:
                    payment = Payment.objects.get(provider="stripe", provider_reference=invoice_id)
                    refund = refund_request(
                        payment=payment,
                        amount=money_from_minor(amount, "USD"),
                        reason_code=Refund.Reason.REQUESTED_BY_CUSTOMER,
                        requested_by=staff,
                        revoke_access=revoke,
                    )
                    assert refund.status == Refund.Status.SUCCEEDED, refund.failure_message
                    done.append((history, invoice_id, refund.provider_refund_id, amount, revoke))
                return done
            finally:
                connection.close()  # this thread's own

        # Several agents at once (each history's refund is its own customer's), as support works: the phase
        # waits on the database, not on this process.
        agents = max(1, int(os.environ.get("STRIPE_SIM_AGENTS", "4")))
        with ThreadPoolExecutor(max_workers=agents) as executor:
            for done in executor.map(refund_some, [planned[k::agents] for k in range(agents)]):
                for history, invoice_id, refund_id, amount, revoke in done:
                    echoes[history.ns[0]] += history.staff_refund_echo(invoice_id, refund_id, amount, revoke)
        watch.phases["staff refunds"] = time.monotonic() - refunding
        with watch("send"):
            echo_in_order, echo_report = deliver_interleaved(
                server, echoes["o"], echoes["s"], rng=random.Random(SEED + first), repeat=0.5, waves=2
            )
        watch.paused(echo_report)
        assert echo_in_order.all_accepted and echo_report.all_accepted
        with watch("drain"):
            settle(timeout=settle_timeout, quiet=2.0)
        assert_none_failed()

        diverged = []
        compared = time.monotonic()
        ours = _ours([h for pair in pairs for h in pair], keys_by_plan)
        for o, s in pairs:
            expected = _normal(o.expected(now))
            ours_o, ours_s = ours[o.ns], ours[s.ns]
            if expected["entitled"] and not keys_by_plan[expected["plan"]]:
                expected["entitled"] = False  # a plan that grants nothing
            if ours_o != expected:
                diverged.append(
                    (o.ns, o.steps, "book", {k: (ours_o[k], expected[k]) for k in ours_o if ours_o[k] != expected[k]})
                )
            if strip(ours_o, o.ns) != strip(ours_s, s.ns):
                diverged.append(
                    (
                        s.ns,
                        s.steps,
                        "order",
                        {k: (ours_o[k], ours_s[k]) for k in ours_o if strip(ours_o[k], o.ns) != strip(ours_s[k], s.ns)},
                    )
                )
        steps.update(step for o, _s in pairs for step in o.steps)
        watch.phases["compare"] = time.monotonic() - compared
        return BatchOutcome(
            count,
            in_order.sent + report.sent + echo_in_order.sent + echo_report.sent,
            report.duplicates + echo_report.duplicates,
            diverged,
            watch.phases,
        )

    started = time.monotonic()
    outcome = soak_batches("stripe", HISTORIES, run_batch)
    print(
        f"\nstripe simulator: {outcome.histories} histories x 2, {outcome.deliveries} deliveries "
        f"({outcome.duplicates} duplicates), {time.monotonic() - started:.1f} s; "
        f"steps seen: {', '.join(sorted(steps))}; diverged: {len(outcome.diverged)}"
    )
    assert not outcome.diverged, outcome.diverged[:5]

"""Properties of what the stores say they refunded: never more than the order, the same words the
same booking id (a redelivery books nothing twice), and a later refund only adds."""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from monetization.providers.app_store import payloads as apple
from monetization.providers.app_store.parsing import refund_report
from monetization.providers.google_play import payloads as play
from monetization.providers.google_play.parsing import order_chain, order_refund

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@given(total=st.integers(1, 100_000), parts=st.lists(st.integers(1, 5_000), max_size=6), whole=st.booleans())
def test_play_order_refund_is_a_running_total_within_the_order(total, parts, whole):
    partials, running = [], 0
    for i, cents in enumerate(parts):
        if running + cents >= total:
            break
        running += cents
        partials.append((T + dt.timedelta(days=i), cents))
    order = play.order(
        order_id="GPA.1",
        token="t",
        total_minor=total,
        currency="USD",
        created=T,
        partial_refunds=partials,
        refunded_at=T + dt.timedelta(days=30) if whole else None,
    )
    report, kind = order_refund(order)
    if whole:
        assert kind == "full" and report.refunded_minor is None  # the whole payment
    elif not partials:
        assert report is None
    else:
        assert kind == "partial" and report.refunded_minor == running < total
        assert order_refund(order)[0].remainder_id == report.remainder_id  # redelivered: same id
        more = play.order(
            order_id="GPA.1",
            token="t",
            total_minor=total,
            currency="USD",
            created=T,
            partial_refunds=[*partials, (T + dt.timedelta(days=20), 1)],
        )
        later, _ = order_refund(more)
        assert later.refunded_minor == running + 1 and later.remainder_id != report.remainder_id


@given(price=st.integers(1, 1_000_000), percentage=st.integers(1, 100_000))
def test_app_store_prorated_refund_never_exceeds_the_price(price, percentage):
    tx = apple.transaction(
        transaction_id="1",
        original_transaction_id="1",
        web_order_line_item_id="1",
        bundle_id="b",
        product_id="p",
        purchase_ms=0,
        original_purchase_ms=0,
        expires_ms=1,
        signed_ms=0,
        price=price,
        currency="USD",
    )
    report = refund_report({**tx, "revocationType": "REFUND_PRORATED", "revocationPercentage": percentage})
    cents = round(price / 10)
    assert 0 <= report.refunded_minor <= cents + 1 and report.remainder_id == "apple:1"
    assert refund_report({**tx, "revocationType": "REFUND_FULL"}).refunded_minor is None


@given(n=st.integers(0, 50))
def test_play_order_chain_names_every_order_once_ending_with_the_latest(n):
    chain = order_chain(f"GPA.9..{n}")
    assert chain[0] == "GPA.9" and chain[-1] == f"GPA.9..{n}" and len(set(chain)) == len(chain) == n + 2

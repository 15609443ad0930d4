"""Whatever a provider says about a cancellation, the reason we store is one word of CancelReason (or none
while the subscription renews): the win-back rules match on those words only."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization.providers.app_store import parsing as apple
from monetization.providers.base import CancelReason
from monetization.providers.google_play import parsing as play
from monetization.providers.stripe import parsing as stripe

WORDS = {*CancelReason, ""}
# Input generation is slow on a loaded machine: not a property of the code under test.
LOADED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
maybe_text = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["too_expensive", "other", "unused"]))


@LOADED
@given(
    intent=st.one_of(st.none(), st.integers(min_value=-1, max_value=9)),
    subtype=st.one_of(st.just(""), st.sampled_from([*apple.EXPIRED_SUBTYPE, "UPGRADE"])),
    status=st.sampled_from(list(apple.STATUS)),
    auto_renew=st.booleans(),
)
def test_app_store_reasons_are_words_of_the_vocabulary(intent, subtype, status, auto_renew):
    reason = apple.cancel_reason({"expirationIntent": intent}, status=status, auto_renew=auto_renew, subtype=subtype)
    assert reason in WORDS
    if auto_renew and status != "expired":
        assert reason == ""  # still renewing: no reason


@LOADED
@given(
    state=st.sampled_from(list(play.STATUS)),
    context=st.dictionaries(
        st.sampled_from(
            [
                "userInitiatedCancellation",
                "systemInitiatedCancellation",
                "developerInitiatedCancellation",
                "replacementCancellation",
            ]
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "cancelSurveyResult": st.fixed_dictionaries(
                    {}, optional={"reason": st.one_of(st.sampled_from(list(play.CANCEL_SURVEY_REASON)), st.text())}
                )
            },
        ),
        max_size=2,
    ),
    mode=st.sampled_from(["PRICE_INCREASE", "PRICE_DECREASE", "OPT_OUT_PRICE_INCREASE"]),
    change_state=st.sampled_from(["OUTSTANDING", "CONFIRMED", "APPLIED"]),
)
def test_play_reasons_are_words_of_the_vocabulary(state, context, mode, change_state):
    item = {"autoRenewingPlan": {"priceChangeDetails": {"priceChangeMode": mode, "priceChangeState": change_state}}}
    reason = play.cancel_reason({"subscriptionState": state, "canceledStateContext": context}, item)
    assert reason in WORDS
    assert play.price_increase(item) in {"pending", "accepted"}


@LOADED
@given(feedback=maybe_text, how=st.one_of(st.none(), st.sampled_from(list(stripe.CANCEL_DETAILS_REASON)), st.text()))
def test_stripe_reasons_are_words_of_the_vocabulary(feedback, how):
    reason = stripe.cancel_reason({"feedback": feedback, "reason": how})
    assert reason in WORDS
    if feedback == "too_expensive":
        assert reason == CancelReason.TOO_EXPENSIVE  # what the customer said beats how it was cancelled

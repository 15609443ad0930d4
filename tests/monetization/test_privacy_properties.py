"""Pseudonymization of JSON, as the database does it: whatever the document, no identifier survives
in any string value, everything else (keys, structure, numbers, other text) is untouched, and doing
it again changes nothing."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization.personal_data import Subject

IDENTIFIERS = ["Ada Lovelace", "ada.lovelace@analytical.example", "adalovelace1815"]
MARKER = "erased-7"
PATTERN = Subject(customer=None, identifiers=IDENTIFIERS).pattern

# Text made of words that may be identifiers (any case) or harmless ones, joined by separators.
word = st.one_of(
    st.sampled_from(IDENTIFIERS).map(lambda w: w.upper() if len(w) % 2 else w),
    st.sampled_from(IDENTIFIERS),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
)
text = st.lists(word, max_size=4).flatmap(
    lambda words: st.sampled_from([" ", ", ", ": ", "/", " <"]).map(lambda sep: sep.join(words))
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), text)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["id", "name", "note", "amount"]), children, max_size=4),
    ),
    max_leaves=12,
)


def scrub(document):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT monetization_scrub_jsonb(%s::jsonb, %s, %s)::text", [json.dumps(document), PATTERN, MARKER]
        )
        return json.loads(cursor.fetchone()[0])


def shape(value):
    """The document with every string blanked: what scrubbing must leave as it was."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return "" if isinstance(value, str) else value


def strings(value):
    """The string values, in an order that does not depend on key order (jsonb sorts keys)."""
    if isinstance(value, dict):
        for _, v in sorted(value.items()):
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_scrubbing_removes_every_identifier_and_nothing_else(document):
    scrubbed = scrub(document)
    assert shape(scrubbed) == shape(document)
    for value in strings(scrubbed):
        assert not any(i.lower() in value.lower() for i in IDENTIFIERS), value
    # Strings without identifiers are untouched.
    for before, after in zip(strings(document), strings(scrubbed), strict=True):
        if not any(i.lower() in before.lower() for i in IDENTIFIERS):
            assert before == after
    assert scrub(scrubbed) == scrubbed

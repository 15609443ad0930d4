import datetime
import io
import json

import pytest
from django.core.management import call_command

from creators.models import DailyEngagement
from creators.services.engagement import RowCode, engagement_ingest, iter_json_lines, sniff_rows
from monetization import clock
from monetization.services.permissions import System

from .factories import make_creator

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 10, 5, tzinfo=datetime.UTC)


def ingest(rows, **kwargs):
    return engagement_ingest(rows, actor=System("test"), **kwargs)


def row(creator, day="2026-09-30", source="premium", **metrics):
    return {
        "customer": creator.customer.external_id,
        "day": day,
        "source": source,
        "impressions": 100,
        "replies": 1,
        "likes": 2,
        "reposts": 3,
        **metrics,
    }


def jsonl(*rows) -> list[bytes]:
    return [json.dumps(r).encode() + b"\n" for r in rows]


def snapshot():
    return sorted(
        DailyEngagement.objects.values_list("creator_id", "day", "source", "impressions", "replies", "likes", "reposts")
    )


def test_resending_a_day_replaces_it_never_doubles():
    c = make_creator()
    with clock.frozen(NOW):
        r1 = ingest(iter_json_lines(jsonl(row(c), row(c, day="2026-10-01"))))
        r2 = ingest(iter_json_lines(jsonl(row(c, impressions=7))))
        r3 = ingest(iter_json_lines(jsonl(row(c, impressions=7))))
    assert (r1.accepted, r2.accepted, r3.accepted) == (2, 1, 1)
    assert DailyEngagement.objects.count() == 2
    assert DailyEngagement.objects.get(creator=c, day=datetime.date(2026, 9, 30)).impressions == 7


def test_last_row_for_a_key_in_one_batch_wins_and_sources_are_separate():
    c = make_creator()
    with clock.frozen(NOW):
        ingest(
            iter_json_lines(jsonl(row(c, impressions=1), row(c, impressions=2), row(c, source="web", impressions=3)))
        )
    assert snapshot() == [
        (c.pk, datetime.date(2026, 9, 30), "premium", 2, 1, 2, 3),
        (c.pk, datetime.date(2026, 9, 30), "web", 3, 1, 2, 3),
    ]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"day": "2026-13-01"}, RowCode.INVALID_DAY),
        ({"day": "2026-10-06"}, RowCode.DAY_IN_FUTURE),
        ({"day": None}, RowCode.MISSING_FIELD),
        ({"source": ""}, RowCode.INVALID_SOURCE),
        ({"source": "UPPER case"}, RowCode.INVALID_SOURCE),
        ({"impressions": -1}, RowCode.INVALID_NUMBER),
        ({"likes": 1.5}, RowCode.INVALID_NUMBER),
        ({"replies": True}, RowCode.INVALID_NUMBER),
        ({"reposts": "ten"}, RowCode.INVALID_NUMBER),
        ({"customer": "nobody"}, RowCode.UNKNOWN_CREATOR),
        ({"customer": ""}, RowCode.MISSING_FIELD),
    ],
)
def test_rejected_rows_are_reported_by_line_and_change_nothing(bad, code):
    c = make_creator()
    with clock.frozen(NOW):
        ingest(iter_json_lines(jsonl(row(c, impressions=5))))
        before = snapshot()
        result = ingest(iter_json_lines(jsonl(row(c, day="2026-10-01"), {**row(c, impressions=999), **bad})))
    assert result.accepted == 1
    assert [(r.line, r.code) for r in result.rejected] == [(2, code)]
    after = snapshot()
    assert [x for x in after if x not in before] == [(c.pk, datetime.date(2026, 10, 1), "premium", 100, 1, 2, 3)]
    assert DailyEngagement.objects.get(creator=c, day=datetime.date(2026, 9, 30)).impressions == 5


def test_invalid_json_line_and_non_object_are_rejected():
    c = make_creator()
    with clock.frozen(NOW):
        result = ingest(iter_json_lines([b"{not json\n", b"[1,2]\n", *jsonl(row(c))]))
    assert [(r.line, r.code) for r in result.rejected] == [(1, RowCode.INVALID_JSON), (2, RowCode.NOT_AN_OBJECT)]
    assert result.accepted == 1


def test_batches_span_months_and_create_partitions():
    c = make_creator()
    with clock.frozen(NOW):
        result = ingest(iter_json_lines(jsonl(*[row(c, day=f"2026-{m:02d}-15") for m in range(1, 10)])), batch_size=4)
    assert result.accepted == 9
    assert DailyEngagement.objects.filter(creator=c).count() == 9


def test_command_reads_csv_and_jsonl(tmp_path):
    c, d = make_creator(), make_creator()
    csv_file = tmp_path / "e.csv"
    csv_file.write_text(
        "customer,day,source,impressions,replies,likes,reposts\n"
        f"{c.customer.external_id},2026-09-01,premium,10,1,1,1\n"
        f"{d.customer.external_id},2026-09-01,premium,x,1,1,1\n"
    )
    out = io.StringIO()
    with clock.frozen(NOW):
        call_command("ingest_engagement", str(csv_file), stdout=out)
    assert "accepted 1, rejected 1" in out.getvalue()
    assert "line 3: invalid_number" in out.getvalue()
    jl = tmp_path / "e.jsonl"
    jl.write_bytes(b"".join(jsonl(row(d, day="2026-09-01", impressions=4))))
    with clock.frozen(NOW):
        call_command("ingest_engagement", str(jl), stdout=io.StringIO())
    assert DailyEngagement.objects.get(creator=d).impressions == 4


def test_sniff_rows_detects_json_array():
    stream = io.BufferedReader(io.BytesIO(b'[{"a": 1}]'))
    assert list(sniff_rows(stream)) == [(1, {"a": 1})]


def test_bulk_api_json_lines_and_array(client_with_scopes):
    c = make_creator()
    client = client_with_scopes("engagement:write")
    body = b"".join(jsonl(row(c), row(c, day="2026-09-29", impressions=-5)))
    with clock.frozen(NOW):
        response = client.post("/api/v1/creators/engagement", data=body, content_type="application/x-ndjson")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "accepted": 1,
        "rejected_count": 1,
        "rejected": [{"line": 2, "code": "invalid_number", "detail": "impressions: -5"}],
    }
    with clock.frozen(NOW):
        response = client.post(
            "/api/v1/creators/engagement", data=json.dumps([row(c, impressions=1)]), content_type="application/json"
        )
    assert response.json()["accepted"] == 1
    assert DailyEngagement.objects.get(creator=c).impressions == 1


def test_bulk_api_needs_the_scope_and_valid_json(client_with_scopes):
    client = client_with_scopes("creators:read")
    response = client.post("/api/v1/creators/engagement", data=b"", content_type="application/x-ndjson")
    assert response.status_code == 403
    assert response.json()["code"] == "api_key_scope_missing"
    client = client_with_scopes("engagement:write")
    response = client.post("/api/v1/creators/engagement", data=b"{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"

"""The session record: the seed's fields, Django's dict nested, extras kept, strict parsing."""

import json

import pytest

from sessions_redis.record import InvalidRecord, SessionRecord, new_session_id, timestamp


def test_layout_is_the_seeds_schema_plus_django():
    record = SessionRecord(session_id=new_session_id(), user_email="a@example.com")
    record.django["_auth_user_id"] = "1"
    data = json.loads(record.to_json())
    assert list(data) == [
        "session_id",
        "user_email",
        "created_at",
        "last_accessed",
        "credentials",
        "thread_ids",
        "django",
    ]
    assert data["django"] == {"_auth_user_id": "1"}
    assert data["credentials"] is None and data["thread_ids"] == []
    assert data["created_at"].endswith("Z") and len(data["created_at"]) == 20


def test_session_id_is_token_urlsafe_32():
    assert len(new_session_id()) == 43


def test_round_trip_keeps_unknown_fields():
    stored = {
        "session_id": "x" * 43,
        "user_email": "a@example.com",
        "created_at": "2026-03-08T10:00:00Z",
        "last_accessed": "2026-03-08T10:30:00Z",
        "credentials": {"token": "t", "scopes": ["calendar"]},
        "thread_ids": ["t1"],
        "django": {"k": "v"},
        "added_by_v2": {"x": 1},
    }
    record = SessionRecord.from_json(json.dumps(stored))
    assert record.extra == {"added_by_v2": {"x": 1}}
    assert json.loads(record.to_json()) == stored


def test_record_written_by_the_seed_code_reads_without_django_dict():
    seed = {
        "session_id": "x" * 43,
        "user_email": "a@example.com",
        "created_at": timestamp(),
        "last_accessed": timestamp(),
        "credentials": None,
        "thread_ids": [],
    }
    assert SessionRecord.from_json(json.dumps(seed, indent=2)).django == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"session_id": "x"}', "missing field(s): user_email, created_at"),
        (
            json.dumps(
                {
                    "session_id": "x",
                    "user_email": None,
                    "created_at": "",
                    "last_accessed": "",
                    "credentials": [],
                    "thread_ids": [1],
                }
            ),
            "credentials must be an object or null; thread_ids must be a list of strings",
        ),
    ],
)
def test_invalid_values_raise_a_specific_error(raw, message):
    with pytest.raises(InvalidRecord, match=message.replace("(", r"\(").replace(")", r"\)")):
        SessionRecord.from_json(raw)

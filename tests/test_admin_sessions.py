"""Sessions in the admin: list (SCAN pages), search, detail
redaction, actions with LogEntry, permissions; on a real Redis db 0."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from agenticpal import redis_keys as keys
from sessions_redis import admin_service
from sessions_redis.models import RedisSession
from sessions_redis.record import SessionRecord, new_session_id, timestamp

pytestmark = pytest.mark.django_db

LIST_URL = "admin:sessions_redis_redissession_changelist"
CRED_URL = "admin:workspace_googlecredential_changelist"


def seed_session(client, email: str | None = "ann@example.com", **fields) -> str:
    """Store one session record the way the project does (record + per-user index)."""
    record = SessionRecord(session_id=new_session_id(), user_email=email, **fields)
    with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.session_key(record.session_id), record.to_json(), ex=keys.SESSION_TTL_SECONDS)
        if email:
            pipe.sadd(keys.user_sessions_key(email), record.session_id)
        pipe.execute()
    return record.session_id


def seed_many(client, count: int, batch: int = 2000) -> None:
    now = timestamp()
    for start in range(0, count, batch):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + batch, count)):
                email = f"user{i % 500}@example.com"
                record = SessionRecord(
                    session_id=new_session_id(),
                    user_email=email,
                    created_at=now,
                    last_accessed=now,
                    thread_ids=[f"t{i}"],
                )
                pipe.set(keys.session_key(record.session_id), record.to_json(), ex=3600)
                pipe.sadd(keys.user_sessions_key(email), record.session_id)
            pipe.execute()


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture(autouse=True)
def _admin_sessions_in_cookies(settings):
    """The staff user's own session must not be one of the sessions being counted."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def rows_on(html: str) -> int:
    return len(re.findall(r'<th class="field-session">', html))


# --- rendering --------------------------------------------------------------------


def test_list_with_no_sessions(admin_client, sessions_redis):
    response = admin_client.get(reverse(LIST_URL))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No sessions in Redis db 0." in html
    assert "admin/base_site.html" in [t.name for t in response.templates]


def test_list_with_one_session_shows_its_columns_but_not_its_id(admin_client, sessions_redis):
    session_id = seed_session(sessions_redis, thread_ids=["t1", "t2"])
    html = admin_client.get(reverse(LIST_URL)).content.decode()
    assert rows_on(html) == 1
    assert admin_service.short_id(session_id) in html
    assert session_id not in html  # bearer secret: only a prefix is shown
    assert "ann@example.com" in html
    assert '<td class="field-threads">2</td>' in html
    assert re.search(r'<td class="field-ttl">6d 23h</td>', html)


def test_list_with_ten_thousand_sessions_pages_through_all(admin_client, sessions_redis):
    seed_many(sessions_redis, 10_000)
    response = admin_client.get(reverse(LIST_URL))
    html = response.content.decode()
    assert response.status_code == 200
    assert 100 <= rows_on(html) <= 250
    assert "next &rsaquo;" in html

    seen, url, pages = 0, reverse(LIST_URL) + "?n=1000", 0
    while url:
        html = admin_client.get(url).content.decode()
        seen += rows_on(html)
        pages += 1
        found = re.search(r'<a href="(\?cursor=[^"]+)">next', html)
        url = reverse(LIST_URL) + found.group(1).replace("&amp;", "&") if found else None
    assert pages > 1
    assert seen >= 10_000  # SCAN: every key at least once


def test_previous_link_goes_back(admin_client, sessions_redis):
    seed_many(sessions_redis, 300)
    first = admin_client.get(reverse(LIST_URL) + "?n=50").content.decode()
    next_link = re.search(r'<a href="(\?cursor=[^"]+)">next', first).group(1).replace("&amp;", "&")
    second = admin_client.get(reverse(LIST_URL) + next_link).content.decode()
    prev_link = re.search(r'<a href="(\?cursor=[^"]+)">&lsaquo; previous', second)
    assert prev_link and "cursor=0" in prev_link.group(1)


def test_search_by_email_uses_the_user_index(admin_client, sessions_redis):
    seed_many(sessions_redis, 2000)
    mine = {seed_session(sessions_redis, "Zed@Example.com") for _ in range(3)}
    html = admin_client.get(reverse(LIST_URL), {"q": "Zed@Example.com"}).content.decode()
    assert rows_on(html) == 3
    assert all(admin_service.short_id(s) in html for s in mine)
    assert "Sign Zed@Example.com out everywhere" in html
    html = admin_client.get(reverse(LIST_URL), {"q": "nobody@example.com"}).content.decode()
    assert "No live session matches" in html


def test_search_by_session_id_prefix(admin_client, sessions_redis):
    session_id = seed_session(sessions_redis)
    html = admin_client.get(reverse(LIST_URL), {"q": session_id[:8]}).content.decode()
    assert rows_on(html) == 1


# --- detail -----------------------------------------------------------------------


def detail_url(admin_client, session_id: str) -> str:
    html = admin_client.get(reverse(LIST_URL), {"q": session_id[:10]}).content.decode()
    return re.search(r'<th class="field-session"><a href="([^"]+)"', html).group(1)


def test_detail_pretty_prints_the_record_with_secrets_redacted(admin_client, sessions_redis):
    session_id = seed_session(
        sessions_redis,
        credentials={
            "token": "ya29.access-secret",
            "refresh_token": "1//refresh-secret",
            "token_uri": "https://oauth2.googleapis.com/token",
            "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "client-secret-value",
            "scopes": ["calendar", "gmail", "tasks"],
        },
        django={"_auth_user_hash": "hash-secret", "_auth_user_id": "7", "note": "gAAAAAfernet"},
        thread_ids=["thread-1"],
    )
    response = admin_client.get(detail_url(admin_client, session_id))
    assert response.status_code == 200
    html = response.content.decode()
    for secret in (
        "ya29.access-secret",
        "1//refresh-secret",
        "client-secret-value",
        "hash-secret",
        "gAAAAAfernet",
        session_id,
    ):
        assert secret not in html
    assert html.count("[redacted]") >= 5
    assert "cid.apps.googleusercontent.com" in html and "calendar" in html
    assert "oauth2.googleapis.com/token" in html
    assert 'href="/admin/chat/conversation/thread-1/"' in html  # its conversation's page
    assert "&quot;user_email&quot;: &quot;ann@example.com&quot;" in html  # indented JSON


def test_detail_does_not_renew_the_ttl(admin_client, sessions_redis):
    session_id = seed_session(sessions_redis)
    sessions_redis.expire(keys.session_key(session_id), 100)
    admin_client.get(detail_url(admin_client, session_id))
    assert sessions_redis.ttl(keys.session_key(session_id)) <= 100


def test_bad_or_stale_links_are_404(admin_client):
    url = reverse("admin:sessions_redis_redissession_change", args=["not-a-ref"])
    assert admin_client.get(url).status_code == 404


def test_unreadable_record_is_listed_and_shown(admin_client, sessions_redis):
    sessions_redis.set(keys.session_key("brokenbrokenbroken"), b"{not json")
    html = admin_client.get(reverse(LIST_URL)).content.decode()
    assert "unreadable" in html
    detail = admin_client.get(detail_url(admin_client, "brokenbrokenbroken"))
    assert detail.status_code == 200


# --- actions ----------------------------------------------------------------------


def test_delete_session_asks_then_deletes_and_logs(admin_client, staff, sessions_redis):
    session_id = seed_session(sessions_redis)
    url = detail_url(admin_client, session_id) + "delete/"
    confirm = admin_client.get(url)
    assert confirm.status_code == 200 and "Are you sure?" in confirm.content.decode()
    assert sessions_redis.exists(keys.session_key(session_id))

    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302 and response.url == reverse(LIST_URL)
    assert not sessions_redis.exists(keys.session_key(session_id))
    assert session_id.encode() not in sessions_redis.smembers(
        keys.user_sessions_key("ann@example.com")
    )
    entry = LogEntry.objects.get()
    assert entry.user == staff and entry.action_flag == DELETION
    assert entry.content_type.model_class() is RedisSession
    assert entry.object_id == admin_service.short_id(session_id)  # never the usable id
    assert "ann@example.com" in entry.object_repr
    assert "Deleted" in entry.get_change_message()


def test_sign_out_everywhere(admin_client, staff, sessions_redis):
    mine = [seed_session(sessions_redis, "bob@example.com") for _ in range(3)]
    other = seed_session(sessions_redis, "carol@example.com")
    url = reverse("admin:sessions_redis_redissession_signout")
    confirm = admin_client.get(url, {"email": "bob@example.com"}).content.decode()
    assert "3 session(s)" in confirm
    response = admin_client.post(url, {"email": "bob@example.com", "post": "yes"})
    assert response.status_code == 302
    assert not any(sessions_redis.exists(keys.session_key(s)) for s in mine)
    assert sessions_redis.exists(keys.session_key(other))
    entries = LogEntry.objects.filter(user=staff)
    assert entries.count() == 3
    assert all("Signed bob@example.com out everywhere" in e.change_message for e in entries)


def test_actions_need_post(admin_client, sessions_redis):
    session_id = seed_session(sessions_redis)
    admin_client.get(detail_url(admin_client, session_id) + "delete/")
    admin_client.get(
        reverse("admin:sessions_redis_redissession_signout"), {"email": "ann@example.com"}
    )
    assert sessions_redis.exists(keys.session_key(session_id))
    assert not LogEntry.objects.exists()


# --- permissions ------------------------------------------------------------------


def test_anonymous_and_non_staff_are_sent_to_the_login(db, sessions_redis):
    seed_session(sessions_redis)
    anonymous = Client()
    for name in (LIST_URL, CRED_URL):
        response = anonymous.get(reverse(name))
        assert response.status_code == 302 and "/admin/login/" in response.url
    user = get_user_model().objects.create_user("joe", "joe@example.com", "pw")
    client = Client()
    client.force_login(user)
    for name in (LIST_URL, CRED_URL):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/admin/login/" in response.url
    response = client.post(
        reverse("admin:sessions_redis_redissession_signout"), {"email": "ann@example.com"}
    )
    assert response.status_code == 302
    assert sessions_redis.scard(keys.user_sessions_key("ann@example.com")) == 1


def test_staff_needs_the_models_permissions(db, sessions_redis):
    session_id = seed_session(sessions_redis)
    user = get_user_model().objects.create_user("sam", "sam@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(reverse(LIST_URL)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_redissession"))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert client.get(reverse(LIST_URL)).status_code == 200
    url = detail_url(client, session_id)
    assert "Delete this session" not in client.get(url).content.decode()
    assert client.post(url + "delete/", {"post": "yes"}).status_code == 403
    assert sessions_redis.exists(keys.session_key(session_id))


def test_admin_index_lists_the_redis_pages(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse(LIST_URL) in html and reverse(CRED_URL) in html


def test_redis_down_gives_the_503_page(admin_client, redis_factory):
    from tests.conftest import use_redis

    server = redis_factory()
    with use_redis(server):
        server.stop()
        response = admin_client.get(reverse(LIST_URL))
    assert response.status_code == 503

"""Google credentials in the admin (workspace.admin): metadata only, revoke with LogEntry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from agenticpal import redis_keys as keys
from workspace.credentials import GoogleCredentials, save_credentials
from workspace.models import GoogleCredential
from workspace.oauth import REVOKE_URI

pytestmark = pytest.mark.django_db

CRED_URL = "admin:workspace_googlecredential_changelist"


def store_credentials(email: str, refresh: str | None = "1//refresh-secret") -> None:
    save_credentials(
        email,
        GoogleCredentials(
            token="ya29.access-secret",
            refresh_token=refresh,
            client_id="cid",
            client_secret="client-secret",
            scopes=["openid", "https://www.googleapis.com/auth/calendar.events"],
            expiry=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
        ),
    )


def test_credentials_list_shows_metadata_never_secrets(admin_client, sessions_redis):
    assert "No user has Google credentials" in admin_client.get(reverse(CRED_URL)).content.decode()
    store_credentials("ann@example.com")
    store_credentials("bob@example.com", refresh=None)
    html = admin_client.get(reverse(CRED_URL)).content.decode()
    assert "ann@example.com" in html and "bob@example.com" in html
    assert "auth/calendar.events" in html
    assert "present" in html and "absent" in html
    raw = sessions_redis.get(keys.credentials_key("ann@example.com")).decode()
    for secret in ("ya29.access-secret", "1//refresh-secret", "client-secret"):
        assert secret not in html
    assert json.loads(raw)["token"] not in html  # not even the encrypted form
    html = admin_client.get(reverse(CRED_URL), {"q": "bob@example.com"}).content.decode()
    assert "bob@example.com" in html and "ann@example.com" not in html


@responses.activate
def test_revoke_credentials_revokes_at_google_deletes_and_logs(
    admin_client, admin_user, sessions_redis
):
    responses.post(REVOKE_URI, status=200)
    store_credentials("ann@example.com")
    url = reverse("admin:workspace_googlecredential_revoke")
    assert "Are you sure?" in admin_client.get(url, {"email": "ann@example.com"}).content.decode()
    assert sessions_redis.exists(keys.credentials_key("ann@example.com"))
    response = admin_client.post(url, {"email": "ann@example.com", "post": "yes"})
    assert response.status_code == 302
    assert not sessions_redis.exists(keys.credentials_key("ann@example.com"))
    assert len(responses.calls) == 1 and "1%2F%2Frefresh-secret" in responses.calls[0].request.body
    entry = LogEntry.objects.get()
    assert entry.user == admin_user and entry.content_type.model_class() is GoogleCredential
    assert entry.object_id == "ann@example.com" and "Google confirmed" in entry.change_message
    assert admin_client.get(url, {"email": "ann@example.com"}).status_code == 404


def test_unreadable_credentials_are_named_not_shown(admin_client, sessions_redis, settings):
    store_credentials("ann@example.com")
    settings.CREDENTIALS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # not the old key
    html = admin_client.get(reverse(CRED_URL)).content.decode()
    assert "ann@example.com" in html and "not in CREDENTIALS_ENCRYPTION_KEY" in html


def test_the_old_address_of_the_page_still_leads_to_it(admin_client):
    response = admin_client.get("/admin/sessions_redis/googlecredential/?q=ann%40example.com")
    assert response.status_code == 302
    assert response["Location"] == "/admin/workspace/googlecredential/?q=ann%40example.com"

"""Sign-in pages: /login/, the Google callback, sign-out, sign-out everywhere, local sign-in.

The Google flow is social-auth's (``social:begin`` is a CSRF-protected POST);
:func:`oauth_complete` wraps its callback only to turn refusals into pages a person can
read (a refused OAuth state, a cancelled consent, a callback without a code, Google not
answering); nothing is written on those paths. ``/login/?scope=`` asks Google for one
missing permission. ``/logout/`` ends this browser's session; ``/logout/everywhere/``
revokes the grant at Google and ends every session of the user. Local sign-in
(``/login/local/<token>/``, DEBUG only, one-time token) gives the demo workspace when
``WORKSPACE_DEMO`` is on. The README's "Google sign-in" section has the details.
"""

from __future__ import annotations

import logging
import secrets
import time

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from social_core.exceptions import AuthCanceled, AuthProviderError, SocialAuthBaseException
from social_django import views as social_views

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_client
from sessions_redis import store
from workspace import credentials, demo
from workspace.oauth_state import SIGNED_IN_BEFORE_COOKIE, OAuthStateError

logger = logging.getLogger("agenticpal.auth")
security_logger = logging.getLogger("django.security.oauth_state")

GOOGLE = "google-oauth2"
# social-core's AuthProviderError codes that mean "Google did not answer" (not "said no").
UNREACHABLE_CODES = frozenset({"connection_failed", "timeout", "tls_error"})
LOCAL_USERNAME = "developer"
LOCAL_EMAIL = "developer@localhost"
# What the Google scopes give the assistant, for the sign-in page.
SCOPE_LABELS = {
    "https://www.googleapis.com/auth/calendar.events": "Calendar: see and edit your events",
    "https://www.googleapis.com/auth/gmail.modify": "Gmail: read, draft, send and label mail",
    "https://www.googleapis.com/auth/tasks": "Tasks: see and edit your task lists",
}


def google_configured() -> bool:
    return bool(
        settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY and settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET
    )


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def redirect_uri(request: HttpRequest) -> str:
    """The callback URL Google must know (what social-auth sends as ``redirect_uri``)."""
    uri = request.build_absolute_uri(reverse("social:complete", args=[GOOGLE]))
    if settings.SOCIAL_AUTH_REDIRECT_IS_HTTPS:
        uri = uri.replace("http://", "https://", 1)
    return uri


def needs_google_again(user) -> bool:
    """A Google user whose credentials are gone (revoked, ``invalid_grant``, expired):
    the sign-in page asks them to sign in with Google again."""
    if not (google_configured() and user.is_authenticated and user.email):
        return False
    if not user.social_auth.filter(provider=GOOGLE).exists():
        return False  # a local account never had Google credentials
    try:
        return credentials.load_credentials(user.email) is None
    except credentials.CredentialsUnreadable:
        return True


@never_cache
@login_not_required
@require_GET
def login_page(request: HttpRequest) -> HttpResponse:
    scopes = settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SCOPE
    return render(
        request,
        "workspace/login.html",
        {
            "google_configured": google_configured(),
            "google_again": needs_google_again(request.user),
            "google_again_message": credentials.SignInRequired.user_message,
            "debug": settings.DEBUG,
            "next": _safe_next(request),
            "redirect_uri": redirect_uri(request),
            "scopes": [(scope, SCOPE_LABELS.get(scope, scope)) for scope in scopes],
            "local_command": f"python manage.py local_login_url {request.scheme}://{request.get_host()}",
            **_grant(request),
        },
    )


def _grant(request: HttpRequest) -> dict[str, str]:
    """``?scope=`` (a tool lacked a permission): ask Google for that scope alone."""
    scope = request.GET.get("scope", "")
    if scope not in SCOPE_LABELS:
        return {}
    return {"grant_scope": scope, "grant_scope_label": SCOPE_LABELS[scope]}


def _too_many_sign_ins(request: HttpRequest) -> HttpResponse | None:
    """A 429 page once an address tried ``SIGN_IN_ATTEMPTS_PER_MINUTE`` sign-ins this
    minute (starting, completing, local links): one INCR + EXPIRE round trip."""
    address = request.META.get("REMOTE_ADDR") or "unknown"
    key = keys.sign_in_rate_key(address, int(time.time() // 60))
    with get_client().pipeline(transaction=False) as pipe:
        attempts, _ = pipe.incr(key).expire(key, 120).execute()
    if attempts <= settings.SIGN_IN_ATTEMPTS_PER_MINUTE:
        return None
    security_logger.warning("Sign-in attempts from %s over the limit this minute", address)
    response = _refused(
        request,
        "Too many sign-in attempts",
        "This address tried to sign in too often in the last minute. Wait a minute and try again.",
        status=429,
    )
    response["Retry-After"] = "60"
    return response


@never_cache
@login_not_required
@require_POST
def oauth_begin(request: HttpRequest, backend: str) -> HttpResponse:
    """social-auth's start of the Google flow, behind the sign-in rate limit."""
    return _too_many_sign_ins(request) or social_views.auth(request, backend)


def _refused(request: HttpRequest, title: str, detail: str, status: int = 400) -> HttpResponse:
    return render(
        request,
        "workspace/sign_in_refused.html",
        {"title": title, "detail": detail},
        status=status,
    )


@never_cache
@login_not_required
@csrf_exempt  # Google redirects here with a GET; the OAuth state is the CSRF check.
def oauth_complete(request: HttpRequest, backend: str) -> HttpResponse:
    if throttled := _too_many_sign_ins(request):
        return throttled
    if backend == GOOGLE and not _has_code_or_error(request):
        # social-core would send Google an empty code and report whatever came back.
        logger.info("Google sign-in callback without a code or an error: not completed")
        return _refused(
            request,
            "Sign-in was not completed",
            "Google sent no authorization code back, so nothing was granted. This happens "
            "when a sign-in page is reloaded or its address is opened by hand. Start again "
            "from the sign-in page.",
        )
    try:
        response = social_views.complete(request, backend)
    except OAuthStateError as exc:
        security_logger.warning(
            "Refused OAuth callback for %s (%s): %s [client %s]",
            backend,
            exc.reason,
            exc,
            request.META.get("REMOTE_ADDR", "?"),
        )
        return _refused(
            request,
            "This sign-in link is not valid",
            f"{exc} Sign-in links work once, for 10 minutes, in the browser that started "
            "them. Start again from the sign-in page.",
        )
    except AuthCanceled:
        return _refused(
            request,
            "Sign-in cancelled",
            "Google did not grant access. AgenticPal needs it to work with your Calendar, "
            "Gmail and Tasks; you can try again whenever you like.",
        )
    except AuthProviderError as exc:
        logger.warning("Google unreachable during sign-in: %s (%s)", exc, exc.code)
        if exc.code in UNREACHABLE_CODES:
            return _refused(
                request, "Google could not be reached", "Please try again in a moment.", status=502
            )
        return _refused(request, "Sign-in did not complete", f"Google answered: {exc}")
    except SocialAuthBaseException as exc:
        logger.warning("Google sign-in failed: %s", exc)
        return _refused(request, "Sign-in did not complete", f"Google answered: {exc}")
    except requests.RequestException as exc:
        logger.warning("Google unreachable during sign-in: %s", exc)
        return _refused(
            request, "Google could not be reached", "Please try again in a moment.", status=502
        )
    if backend == GOOGLE and request.user.is_authenticated:
        _after_google_sign_in(request, response)
    return response


def _has_code_or_error(request: HttpRequest) -> bool:
    """Whether the callback carries what Google sends: a ``code``, or an ``error``
    (a refusal social-core turns into :class:`AuthCanceled` and the like)."""
    wanted = ("code", "error")
    if any(request.GET.get(name) for name in wanted):
        return True
    if request.method != "POST":
        return False
    try:  # social-auth reads both; a form POST carries them in the body
        return any(request.POST.get(name) for name in wanted)
    except (SuspiciousOperation, MultiPartParserError):  # too big, too many fields, bad
        return False


def _after_google_sign_in(request: HttpRequest, response: HttpResponse) -> None:
    """Point the session record at the credentials, and remember that this browser
    has consented before (the next sign-in skips the consent screen)."""
    email = request.user.email
    try:
        stored = credentials.load_credentials(email)
    except credentials.CredentialsUnreadable:
        stored = None
    if stored is not None and request.session.session_key:
        reference = stored.reference(email)

        def attach(record) -> None:
            record.credentials = reference

        store.update(request.session.session_key, attach, client=get_client("sessions"))
    response.set_cookie(
        SIGNED_IN_BEFORE_COOKIE,
        "1",
        max_age=365 * 24 * 3600,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


@login_not_required
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Sign out this browser: Django's logout flushes (deletes) the session record."""
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect(settings.LOGIN_URL)


@login_required
@require_POST
def logout_everywhere(request: HttpRequest) -> HttpResponse:
    """Delete every session of the user and their credentials; revoke the grant at Google."""
    email = request.user.email
    revoked = credentials.revoke_and_delete(email) if email else True
    ended = store.delete_all_for(email, client=get_client("sessions")) if email else 0
    logout(request)
    logger.info("Signed %s out everywhere (%d sessions)", email, ended)
    if revoked:
        messages.info(request, "You are signed out on every device, and Google access is revoked.")
    else:
        messages.warning(
            request,
            "You are signed out on every device, but Google could not be reached to revoke "
            "access. Remove AgenticPal at https://myaccount.google.com/permissions to be sure.",
        )
    return redirect(settings.LOGIN_URL)


# --- local development sign-in ------------------------------------------------------


def issue_login_token(email: str = LOCAL_EMAIL) -> str:
    """A one-time token for :func:`local_login` (``login_token:<token>``, short TTL)."""
    token = secrets.token_urlsafe(32)
    get_client().set(keys.login_token_key(token), email, ex=settings.LOGIN_TOKEN_TTL_SECONDS)
    return token


@never_cache
@login_not_required
@require_GET
def local_login(request: HttpRequest, token: str) -> HttpResponse:
    """Sign in the local developer with a one-time token (DEBUG only, else 404)."""
    if not settings.DEBUG:
        raise Http404("Local sign-in is disabled when DEBUG is off.")
    if throttled := _too_many_sign_ins(request):
        return throttled
    raw = get_client().getdel(keys.login_token_key(token))
    if raw is None:
        return _refused(
            request,
            "This sign-in link has expired or was already used",
            "Local sign-in links work once and expire after a few minutes. Get a new one with "
            f"`python manage.py local_login_url {request.scheme}://{request.get_host()}` "
            "(`make run` prints one when it starts).",
            status=410,
        )
    email = raw.decode()
    user_model = get_user_model()
    user = user_model.objects.filter(email=email).order_by("pk").first()
    if user is None:
        # Two first sign-ins at once (two tabs, a script) must not both create the user:
        # get_or_create on the unique username, which retries the read on a collision.
        username = LOCAL_USERNAME if email == LOCAL_EMAIL else email
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"email": email}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    if demo.enabled():
        demo.connect(email)
    return redirect(settings.LOGIN_REDIRECT_URL)

"""Project-level views: health check."""

from __future__ import annotations

import asyncio
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, Purpose, display_url, get_async_client


async def _ping(purpose: Purpose) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(get_async_client(purpose).ping(), timeout=2)
    except (*UNAVAILABLE_ERRORS, TimeoutError) as exc:
        if not settings.DEBUG:  # anyone can ask: no internal address, no raw error
            return {"status": "down"}
        return {"status": "down", "url": display_url(purpose), "error": str(exc) or "timeout"}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@never_cache
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``{"redis": "ok", ...}`` when db 0 and db 1 answer; 503 naming the failing part."""
    sessions, checkpoints = await asyncio.gather(_ping("sessions"), _ping("checkpoints"))
    ok = sessions["status"] == "ok" and checkpoints["status"] == "ok"
    failing = [name for name, r in (("sessions", sessions), ("checkpoints", checkpoints))
               if r["status"] != "ok"]  # fmt: skip
    body = {
        "redis": "ok" if ok else "down",
        "sessions": sessions,
        "checkpoints": checkpoints,
    }
    if failing:
        body["failing"] = failing
        body["fix"] = "Start Redis with `make redis` or set REDIS_URL to a running server."
    return JsonResponse(body, status=200 if ok else 503)

"""TEMPORARY stand-in for the chat engine and thread ownership, used only until the real
modules land (chat.events / chat.runner / chat.history / sessions_redis.threads).
``install()`` does nothing for a module that exists. Delete this file once they all do.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
import types
import uuid

from channels.layers import get_channel_layer

from agenticpal.redis_clients import get_async_client

_history: dict[str, list[dict]] = {}
_tasks: set = set()
_running: dict[str, asyncio.Task] = {}


def _events() -> types.ModuleType:
    m = types.ModuleType("chat.events")

    def group_name(tid):
        return f"thread.{tid}"

    def validate_thread_id(tid):
        return isinstance(tid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tid) is not None

    async def publish(tid, event):
        r = get_async_client("sessions")
        eid = await r.xadd(f"standin_events:{tid}", {"e": json.dumps(event)}, maxlen=1000)
        event = {**event, "id": eid.decode()}
        await get_channel_layer().group_send(
            group_name(tid), {"type": "chat.event", "event": event}
        )
        return event

    async def read_since(tid, last_id, block_ms=0):
        r = get_async_client("sessions")
        res = await r.xread({f"standin_events:{tid}": last_id}, block=block_ms or None, count=100)
        out = []
        for _key, entries in res or []:
            for eid, fields in entries:
                out.append({**json.loads(fields[b"e"]), "id": eid.decode()})
        return out

    async def last_id(tid):
        r = get_async_client("sessions")
        res = await r.xrevrange(f"standin_events:{tid}", count=1)
        return res[0][0].decode() if res else "0-0"

    m.group_name, m.validate_thread_id, m.publish = group_name, validate_thread_id, publish
    m.read_since, m.last_id = read_since, last_id
    return m


def _runner(events) -> types.ModuleType:
    m = types.ModuleType("chat.runner")

    class InvalidMessage(ValueError):
        pass

    async def run(tid, text, mid):
        await events.publish(tid, {"type": "user", "message_id": mid, "text": text})
        reply = f"You said: {text}"
        for word in reply.split(" "):
            await events.publish(tid, {"type": "token", "message_id": mid, "text": word + " "})
            await asyncio.sleep(0.01)
        hist = _history.setdefault(tid, [])
        hist += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
        await events.publish(tid, {"type": "done", "message_id": mid, "content": reply})

    async def submit(tid, text, email):
        if not text.strip():
            raise InvalidMessage("empty")
        mid = uuid.uuid4().hex
        await get_async_client("sessions").rpush(f"pending_msg:{tid}", text)
        prev = _running.get(tid)

        async def chain():
            if prev is not None:
                await asyncio.gather(prev, return_exceptions=True)
            await run(tid, text, mid)

        task = _running[tid] = asyncio.ensure_future(chain())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        return mid

    async def cancel(tid):
        task = _running.get(tid)
        if task and not task.done():
            task.cancel()

    async def recover(tid):
        await get_async_client("sessions").ping()

    m.InvalidMessage, m.submit, m.cancel, m.recover = InvalidMessage, submit, cancel, recover
    return m


def _history_mod() -> types.ModuleType:
    m = types.ModuleType("chat.history")

    async def get_history(tid):
        await get_async_client("checkpoints").ping()
        return list(_history.get(tid, []))

    async def thread_title(tid):
        h = _history.get(tid)
        return h[0]["content"][:60] if h else ""

    async def delete_thread(tid):
        _history.pop(tid, None)
        await get_async_client("sessions").delete(f"pending_msg:{tid}", f"standin_events:{tid}")

    m.get_history, m.thread_title, m.delete_thread = get_history, thread_title, delete_thread
    return m


def _threads() -> types.ModuleType:
    m = types.ModuleType("sessions_redis.threads")

    def user_key(user):  # unused
        return user.email or user.get_username()

    async def aclaim_thread(email, tid):
        r = get_async_client("sessions")
        await r.set(f"thread_owner:{tid}", email, nx=True)
        owner = await r.get(f"thread_owner:{tid}")
        if owner.decode() != email:
            return False
        await r.zadd(f"user_threads:{email}", {tid: asyncio.get_running_loop().time()}, nx=True)
        return True

    async def aowner_of(tid):
        v = await get_async_client("sessions").get(f"thread_owner:{tid}")
        return v.decode() if v else None

    async def athreads_for(email):
        ids = await get_async_client("sessions").zrevrange(f"user_threads:{email}", 0, -1)
        return [i.decode() for i in ids]

    async def aforget_thread(email, tid):
        r = get_async_client("sessions")
        await r.delete(f"thread_owner:{tid}")
        await r.zrem(f"user_threads:{email}", tid)

    async def aadd_thread(session_key, tid):
        return None

    async def aremove_thread(session_key, tid):
        return None

    for name, fn in list(locals().items()):
        if callable(fn) and not name.startswith("_") and name != "m":
            setattr(m, name, fn)
    return m


def _missing(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return True
    return False


def install() -> None:
    import chat
    import sessions_redis

    if _missing("sessions_redis.threads"):
        sys.modules["sessions_redis.threads"] = sessions_redis.threads = _threads()
    if _missing("chat.events"):
        sys.modules["chat.events"] = chat.events = _events()
    if _missing("chat.history"):
        sys.modules["chat.history"] = chat.history = _history_mod()
    if _missing("chat.runner"):
        sys.modules["chat.runner"] = chat.runner = _runner(chat.events)

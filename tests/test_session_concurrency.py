"""Two tabs of one session write at once: nobody's ``thread_ids`` (or data) is lost."""

import asyncio
import json
import threading

from agenticpal import redis_keys as keys
from sessions_redis import store
from sessions_redis.backend import SessionStore


def new_session() -> str:
    session = SessionStore()
    session["tabs"] = 0
    session.save()
    return session.session_key


def stored(sessions_redis, session_key):
    return json.loads(sessions_redis.get(keys.session_key(session_key)))


def test_a_django_save_does_not_drop_threads_added_since_it_loaded(sessions_redis):
    key = new_session()
    tab_a = SessionStore(key)
    assert tab_a["tabs"] == 0  # loaded before the thread was added
    assert store.add_thread_id(key, "thread-1")
    tab_a["tabs"] = 1
    tab_a.save()
    data = stored(sessions_redis, key)
    assert data["thread_ids"] == ["thread-1"]
    assert data["django"]["tabs"] == 1


def test_many_threads_adding_threads_and_saving_at_once(sessions_redis):
    key = new_session()
    workers = 16
    barrier = threading.Barrier(workers * 2)
    errors = []

    def add(i: int) -> None:
        try:
            barrier.wait()
            for j in range(10):
                assert store.add_thread_id(key, f"t-{i}-{j}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def save(i: int) -> None:
        try:
            barrier.wait()
            for j in range(10):
                tab = SessionStore(key)
                tab[f"tab-{i}"] = j
                tab.save()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=add, args=(i,)) for i in range(workers)]
    pool += [threading.Thread(target=save, args=(i,)) for i in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    data = stored(sessions_redis, key)
    assert sorted(data["thread_ids"]) == sorted(
        f"t-{i}-{j}" for i in range(workers) for j in range(10)
    )
    # Django data is last-writer-wins per save, but every save wrote onto the record.
    assert data["django"]["tabs"] == 0


async def test_concurrent_async_adds_are_all_kept(sessions_redis):
    key = new_session()
    results = await asyncio.gather(*(store.aadd_thread_id(key, f"t{i}") for i in range(100)))
    assert all(results)
    assert sorted(stored(sessions_redis, key)["thread_ids"]) == sorted(f"t{i}" for i in range(100))


async def test_concurrent_async_saves_and_removes(sessions_redis):
    key = new_session()
    for i in range(20):
        assert await store.aadd_thread_id(key, f"t{i}")

    async def tab(i: int) -> None:
        store = SessionStore(key)
        await store.aset(f"tab-{i}", True)
        await store.asave()

    await asyncio.gather(
        *(store.aremove_thread_id(key, f"t{i}") for i in range(0, 20, 2)),
        *(tab(i) for i in range(20)),
    )
    data = stored(sessions_redis, key)
    assert data["thread_ids"] == [f"t{i}" for i in range(1, 20, 2)]

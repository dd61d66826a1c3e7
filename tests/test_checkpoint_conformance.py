"""The public ``langgraph-checkpoint-conformance`` suite against our savers, on a real
Redis, in db 1 (the "checkpoints" URL of the test settings).

The suite drives the async API. The sync saver is checked through a thin test-only
adapter whose ``a*`` methods call the sync methods inline, so every sync code path runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from agenticpal import redis_clients
from agenticpal import redis_keys as keys
from chat.checkpoint import AsyncRedisCheckpointer, RedisCheckpointer

CAPABILITIES = sorted(c.value for c in ALL_CAPABILITIES)


class SyncWrapped(RedisCheckpointer):
    """The sync saver behind the async interface the suite calls (no threads)."""

    async def aget_tuple(self, config):
        return self.get_tuple(config)

    async def alist(self, config, *, filter=None, before=None, limit=None) -> AsyncIterator:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config, checkpoint, metadata, new_versions):
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes, task_id, task_path=""):
        return self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id):
        return self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids):
        return self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id, target_thread_id):
        return self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids, *, strategy="keep_latest"):
        return self.prune(thread_ids, strategy=strategy)


def _check_db1(client: Any) -> None:
    assert client.connection_pool.connection_kwargs["db"] == keys.CHECKPOINTS_DB


@checkpointer_test(name="AsyncRedisCheckpointer")
async def async_saver() -> AsyncIterator[AsyncRedisCheckpointer]:
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver:
        _check_db1(saver.client)
        yield saver


@checkpointer_test(name="RedisCheckpointer (sync)")
async def sync_saver() -> AsyncIterator[SyncWrapped]:
    with SyncWrapped.from_url(redis_clients.url_for("checkpoints")) as saver:
        _check_db1(saver.client)
        yield saver


@checkpointer_test(name="AsyncRedisCheckpointer (ttl)")
async def async_saver_ttl() -> AsyncIterator[AsyncRedisCheckpointer]:
    async with AsyncRedisCheckpointer.from_url(
        redis_clients.url_for("checkpoints"), ttl=3600
    ) as saver:
        yield saver


def _failures(report: Any) -> Iterator[str]:
    for name, result in report.results.items():
        for failure in result.failures:
            yield f"{name}: {failure}"


@pytest.mark.parametrize(
    "registered", [async_saver, sync_saver, async_saver_ttl], ids=lambda r: r.name
)
async def test_conformance(registered: Any) -> None:
    report = await validate(registered)
    assert not list(_failures(report)), "\n".join(_failures(report))
    for cap in CAPABILITIES:
        result = report.results[cap]
        assert result.detected, f"{registered.name}: {cap} not implemented"
        assert result.passed is True, f"{registered.name}: {cap} failed"
        assert result.tests_passed > 0
    assert report.conformance_level() == "FULL"

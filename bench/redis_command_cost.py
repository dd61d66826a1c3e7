"""What one Redis command costs the server's process: redis-py's asyncio client, CPU only.

    .venv/bin/python bench/redis_command_cost.py [--tasks 20] [--commands 20000]
        [--compare DIR ...]

A redis-server of its own (started here, no persistence); ``--tasks`` concurrent tasks
on uvloop, as a busy worker runs them, each sending commands one after another on the
client's connection pool, as the chat server does: ``GET``, ``EVALSHA`` of a script that
reads a key (the shape of every script of the hot path) and, to show what sending
several commands in one write would save, the same script eight times in one pipeline.
The figure is the process's CPU time per command (best of three rounds), not the wall
time: on a machine shared with redis-server the CPU is what a worker runs out of.

``--compare DIR`` runs the same measurement, in the same run, with the redis-py found in
``DIR`` first on the path (e.g. ``uv pip install --target /tmp/redis-5.2.1 redis==5.2.1``),
to put a figure on the client's own overhead across versions. The last lines are for
scripts: ``redis_py=<version> command=<get|evalsha|evalsha_pipelined> cpu_us=<x>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "redis.call('GET', KEYS[1]) return ARGV[1]"
PIPELINED = 8


def measure(port: int, tasks: int, commands: int) -> dict:
    """CPU microseconds per command of the redis-py on the path (run in a child process)."""
    import asyncio

    import redis
    import redis.asyncio as aredis
    import uvloop

    async def run() -> dict[str, float]:
        client = aredis.Redis(port=port, protocol=3)
        script = client.register_script(SCRIPT)
        await script(keys=["k"], args=["x"])  # loaded: EVALSHA from here on
        per_task = max(1, commands // tasks)

        async def gets() -> None:
            for _ in range(per_task):
                await client.get("k")

        async def scripts() -> None:
            for _ in range(per_task):
                await script(keys=["k"], args=["x"])

        async def pipelined() -> None:
            for _ in range(max(1, per_task // PIPELINED)):
                async with client.pipeline(transaction=False) as pipe:
                    for _ in range(PIPELINED):
                        await script(keys=["k"], args=["x"], client=pipe)
                    await pipe.execute()

        figures = {}
        for name, body, sent in (
            ("get", gets, per_task * tasks),
            ("evalsha", scripts, per_task * tasks),
            ("evalsha_pipelined", pipelined, max(1, per_task // PIPELINED) * PIPELINED * tasks),
        ):
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                await asyncio.gather(*(body() for _ in range(tasks)))
                best = min(best, time.process_time() - started)
            figures[name] = best / sent * 1e6
        await client.aclose()
        return figures

    return {"version": redis.__version__, "cpu_us": uvloop.run(run())}


def child(port: int, tasks: int, commands: int, path: str | None) -> dict:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import redis_command_cost as b; "
        "print(json.dumps(b.measure(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "bench"), str(port), str(tasks), str(commands)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(
            f"measuring with redis-py from {path or 'the venv'} failed:\n{done.stderr}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20, help="concurrent tasks (default 20)")
    parser.add_argument("--commands", type=int, default=20000, help="commands per round")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="DIR",
        help="also measure the redis-py installed in DIR (uv pip install --target DIR ...)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.commands < args.tasks * PIPELINED:
        parser.error("--tasks >= 1 and --commands >= 8 x --tasks")
    sys.path.insert(0, str(ROOT))
    from agenticpal.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", appendonly=False)
        server.start()
        try:
            rows = []
            # Interleaved, twice: a change of the machine's pace touches every client alike.
            for _ in range(2):
                for path in [None, *args.compare]:
                    rows.append(child(server.port, args.tasks, args.commands, path))
        finally:
            server.stop()
    print(
        f"redis-server {server.version}; {args.tasks} concurrent tasks on uvloop, "
        f"{args.commands} commands a round; CPU of the client's process per command "
        "(best of 3 rounds, each client measured twice, interleaved)\n"
    )
    print("| redis-py | GET | EVALSHA | EVALSHA, 8 in a pipeline |")
    print("|---|---:|---:|---:|")
    best: dict[str, dict[str, float]] = {}
    for row in rows:
        seen = best.setdefault(row["version"], {})
        for name, value in row["cpu_us"].items():
            seen[name] = min(seen.get(name, float("inf")), value)
    for version, figures in best.items():
        print(
            f"| {version} | {figures['get']:.1f} µs | {figures['evalsha']:.1f} µs | "
            f"{figures['evalsha_pipelined']:.1f} µs |"
        )
    print()
    for version, figures in best.items():
        for name, value in figures.items():
            print(f"redis_py={version} command={name} cpu_us={value:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

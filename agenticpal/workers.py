"""The production server: uvicorn with N worker processes that share the load evenly.

    python -m agenticpal.workers [--host 127.0.0.1] [--port 8000] [--workers N]

What ``make run`` starts (through :mod:`agenticpal.serve`), what the Docker image runs and
what the README gives as the production command. ``--workers`` defaults to
``WEB_CONCURRENCY``, else one per CPU core; each worker serves
``agenticpal.serve:asgi_application`` (lifespan on: at shutdown its chat runs drain).

Why not ``uvicorn --workers N``: its supervisor binds one socket and every worker accepts
from it, and Linux wakes the waiting accepts last-in first-out, so one worker takes most
connections: 200 websockets opened on two workers went 152 / 48, and a 200-chat burst ran
at 0.97x one worker's messages/s (one core saturated, the other mostly idle; the README's
"Chat websocket benchmark"). Here each worker listens on a socket of its own with
``SO_REUSEPORT``, and Linux spreads connections over the sockets by their address
hash (elsewhere, where ``SO_REUSEPORT`` does not balance, the workers share uvicorn's
one socket as before). Everything else is uvicorn's supervisor (restarting a
dead worker, graceful shutdown on SIGINT / SIGTERM): :class:`ReusePortProcess` only
changes which socket a worker serves; the supervisor holds no listening socket, so no
connection waits on one that nobody accepts from.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn
from uvicorn.supervisors import multiprocess

from agenticpal.serve import APP_FACTORY, CONNECTIONS_GRACE_SECONDS, web_concurrency

WS_MAX_SIZE = 65_536  # bytes of one incoming websocket frame


def config(host: str, port: int, workers: int) -> uvicorn.Config:
    """The server's settings. No permessage-deflate: the frames are small chat events, and
    compressing each one cost more CPU than the bytes it saved."""
    return uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        timeout_graceful_shutdown=CONNECTIONS_GRACE_SECONDS,
        server_header=False,
        ws_max_size=WS_MAX_SIZE,
        ws_per_message_deflate=False,
    )


def reuse_port_socket(conf: uvicorn.Config) -> socket.socket:
    """A listening socket of this worker's own on the shared address (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in conf.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((conf.host, conf.port))
    sock.listen(conf.backlog)
    sock.set_inheritable(True)
    return sock


class ReusePortProcess(multiprocess.Process):
    """uvicorn's worker process, serving a ``SO_REUSEPORT`` socket of its own."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # in the worker
        super().target([reuse_port_socket(self.config)])


def _serve_workers(conf: uvicorn.Config) -> None:
    if not sys.platform.startswith("linux"):  # no balancing SO_REUSEPORT: uvicorn's own
        multiprocess.Multiprocess(conf, sockets=[conf.bind_socket()]).run()
        return
    # SO_REUSEPORT would let a second server of the same user share the port silently:
    # uvicorn's own bind, closed at once, fails (and exits saying so) when it is taken.
    conf.bind_socket().close()
    # uvicorn's supervisor builds its workers from this module attribute (each start and
    # each restart); it is set here, in the supervisor process only.
    multiprocess.Process = ReusePortProcess
    multiprocess.Multiprocess(conf, sockets=[]).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agenticpal.workers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, help="default: WEB_CONCURRENCY, else the cores")
    args = parser.parse_args(argv)
    workers = args.workers or web_concurrency(dict(os.environ))
    if workers < 1:
        parser.error("--workers must be 1 or more")
    conf = config(args.host, args.port, workers)
    if workers == 1:  # one process, no supervisor (as uvicorn --workers 1)
        uvicorn.Server(conf).run()
    else:
        _serve_workers(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())

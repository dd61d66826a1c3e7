"""Serve the Workspace emulator with uvicorn: ``python -m workspace.emulator --port 8765``.

Point a client's Google base URL (https://www.googleapis.com) at the printed address and
send ``Authorization: Bearer demo.<you>@<host>``.
"""

from __future__ import annotations

import argparse

import uvicorn

from . import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workspace.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every request")
    parser.add_argument("--timezone", default="Europe/Paris", help="the calendars' time zone")
    args = parser.parse_args()
    app = create_app(latency_ms=args.latency_ms, timezone=args.timezone)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

"""One refresh call for N *processes* racing on an expired token (the lock is in Redis).

Google's token endpoint is a local HTTP server here (the credentials' ``token_uri`` points
at it), so separate worker processes, each with its own Django and Redis connections,
can be counted at the HTTP layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import oauth_support
from tests.oauth_support import CLIENT_ID, CLIENT_SECRET, EMAIL, KEY
from tests.test_credentials import NEW_TOKEN, REFRESH, stored
from workspace import credentials

google_settings = oauth_support.google_settings

WORKERS = 4
BASE_DIR = Path(__file__).resolve().parent.parent
WORKER = """
import sys
from workspace import credentials  # needs settings, not the app registry
print("ready", flush=True)
sys.stdin.readline()  # "go": every worker has imported Django and waits here
print(credentials.google_credentials(sys.argv[1]).token, flush=True)
"""


class FakeTokenEndpoint(BaseHTTPRequestHandler):
    calls: list[dict] = []

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        FakeTokenEndpoint.calls.append({"body": self.rfile.read(length).decode()})
        time.sleep(0.5)  # every worker finds the token expired meanwhile
        body = json.dumps({"access_token": NEW_TOKEN, "expires_in": 3599}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def token_endpoint():
    FakeTokenEndpoint.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/token"
    server.shutdown()
    server.server_close()


def test_racing_processes_make_one_refresh_call(google_settings, token_endpoint, redis_server):
    creds = stored()
    credentials.save_credentials(EMAIL, replace(creds, token_uri=token_endpoint))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_server.url,
        "GOOGLE_OAUTH2_KEY": CLIENT_ID,
        "GOOGLE_OAUTH2_SECRET": CLIENT_SECRET,
        "CREDENTIALS_ENCRYPTION_KEY": KEY,
        "PYTHONPATH": str(BASE_DIR),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, EMAIL],
            env=env,
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    for worker in workers:  # a barrier: the race starts when everyone is ready
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=60) for worker in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.strip() == NEW_TOKEN
    assert len(FakeTokenEndpoint.calls) == 1
    assert f"refresh_token={REFRESH.replace('/', '%2F')}" in FakeTokenEndpoint.calls[0]["body"]
    assert credentials.load_credentials(EMAIL).token == NEW_TOKEN

"""``bench/workspace.py``'s approval scenario runs to its end and kills the worker at
every step boundary it names: a boundary the runner no longer passes (a step renamed,
two calls merged into one script) must fail here, not leave the bench waiting for ever."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e_support import load_bench

ROOT = Path(__file__).resolve().parent.parent


def test_the_approval_scenario_crashes_at_every_boundary_and_acts_exactly_once() -> None:
    bench = subprocess.Popen(
        [sys.executable, "bench/workspace.py", "--quick", "--repeat", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = bench.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        # SIGTERM: the bench unwinds and stops its redis-server and stubs (not SIGKILL,
        # which would leave them running in their own sessions).
        bench.terminate()
        try:
            output, _ = bench.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            bench.kill()
            output, _ = bench.communicate()
        raise AssertionError(f"the bench did not finish in 240 s:\n{output[-3000:]}") from None
    # The read rows' wall-time targets may miss on a loaded machine (exit status 1);
    # the approval lines are what this test reads.
    assert "scenario=approval " in output, output[-3000:]
    line = re.search(r"scenario=approval .*", output).group(0)
    assert "actions=30 duplicated=0 lost=0" in line, line
    crashes = re.search(r"killed at a random step boundary in \d+ \((.*)\)", output).group(1)
    counts = dict(part.rsplit(" ", 1) for part in crashes.split(", "))
    for boundary in filter(None, load_bench("approvals").BOUNDARIES):
        assert int(counts.get(boundary, 0)) >= 1, (boundary, crashes)

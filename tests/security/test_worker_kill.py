"""Faults: a worker killed mid-job (SIGKILL, no clean-up) loses nothing and doubles nothing on restart."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.api.test_clockwork_worker import ROOT, _counts, _url, _world


@pytest.mark.parametrize("kill_after", [0.3, 1.2, 2.5])
def test_worker_killed_mid_run_resumes_without_doubles(client, db, kill_after):
    n = _world(db, client, n_sessions=4, per_session=6)
    env = {**os.environ, "GUAHAO_DATABASE_URL": _url(db), "GUAHAO_NOW": "2026-12-02T18:00:05+08:00",
           "GUAHAO_ENVIRONMENT": "test", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "guahao.cli", "worker", "--once"]
    victim = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    victim.send_signal(signal.SIGKILL)  # wherever it is: inside a job's transaction or between jobs
    victim.wait(timeout=30)
    # Whatever the killed run committed stays; what it had not committed is redone by the next run.
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    by_kind, attempts, statuses = _counts(db)
    assert by_kind == {"booking_confirmed": n, "reminder": n}
    assert attempts == {1}  # every message handed to the sender exactly once
    assert statuses == {"booked": n}

"""bench/cpu.py: the burst's report of who used the cores."""

import subprocess
import sys
import time

import pytest

from bench import cpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_busy_process_group_is_counted_as_the_server_and_an_idle_one_is_not():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        time.sleep(0.2)
        pids = cpu.parties(busy.pid)
        assert pids["server"] == [busy.pid] and pids["load generator"] == [cpu.os.getpid()]
        assert idle.pid not in sum(pids.values(), [])
        assert cpu.parties(busy.pid, (idle.pid,))["load generator"] == [cpu.os.getpid(), idle.pid]
        t0 = time.time()
        with cpu.Sampler(pids, interval=0.05) as sampler:
            time.sleep(1.0)
        used = sampler.cores(t0, t0 + 1.0)
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    assert 0.3 <= used["server"] <= 1.1, used  # one spinning process: up to one core (less on a busy machine)
    assert used["load generator"] < 0.3, used  # this test sleeps
    assert used["machine"] >= used["server"]
    parties = sum(v for k, v in used.items() if k not in ("machine", "others", "seconds"))
    assert used["others"] >= 0 and parties <= used["machine"] + 0.05
    assert 0.8 <= used["seconds"] <= 1.2


def test_a_window_without_samples_gives_nothing():
    s = cpu.Sampler({"server": []})
    assert s.cores(0, 1) is None

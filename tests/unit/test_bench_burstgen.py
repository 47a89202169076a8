"""bench/burstgen.py: the compiled load generator's input and output, without a server."""

import random
import socket
import threading
from datetime import date

import pytest

from bench import burstgen
from bench.scenario import Scenario, World, _weights


def _world(sessions=3, per=4, patients=50):
    slots = {100 + s: [1000 + 10 * s + k for k in range(per)] for s in range(sessions)}
    return World(department_id=7, visit_date=date(2026, 12, 8),
                 session_ids=list(slots), slots=slots, patients=[(i, 500 + i, "p") for i in range(patients)])


def test_the_generator_gets_run_bursts_preferences_phases_and_order():
    sc = Scenario(patients=50, sessions=3, per_session=4, seed=42, connections=8)
    world = _world()
    tokens = [f"tok{i}" for i in range(50)]
    lines = burstgen.spec("http://localhost:8123", world, tokens, sc, 1234.5).splitlines()
    head = lines[0].split()
    assert head[:3] == ["127.0.0.1", "8123", "8"] and float(head[4]) == 1234.5
    assert lines[1] == "/api/v1/slots?department_id=7&date=2026-12-08"
    assert lines[2] == "3" and lines[3].split()[:2] == ["100", "4"]
    # run_burst's own draws, repeated here: the same seed gives the same preferences and the same order.
    rng = random.Random(42)
    w = _weights(3, sc.skew)
    expected_prefs = [sorted(world.session_ids, key=lambda sid: -rng.random() ** (1.0 / w[sid - 100]))
                      for _ in range(50)]
    order = list(range(50))
    rng.shuffle(order)
    patients = lines[7:57]
    for i, line in enumerate(patients):
        pid, phase, tok, n, *prefs = line.split()
        assert (int(pid), tok, int(n)) == (500 + i, f"tok{i}", 3)
        assert [int(p) for p in prefs] == expected_prefs[i]
        assert 0 <= float(phase) < sc.poll_interval
    assert [int(x) for x in lines[57].split()] == order


def test_records_are_read_back_as_the_asyncio_generators():
    recs = burstgen.parse("book -0.000100 0.012000 201 booked 3 1001 77\nread 0.0125 0.02 304 304 3 0 0\n")
    assert [(r.kind, r.status, r.code, r.patient, r.slot_id, r.booking_id) for r in recs] == [
        ("book", 201, "booked", 3, 1001, 77), ("read", 304, "304", 3, 0, 0)]
    assert recs[0].t0 == -0.0001 and recs[0].t1 == recs[0].seen == 0.012


def test_without_a_compiler_the_bench_is_told_so(monkeypatch):
    monkeypatch.setattr(burstgen.shutil, "which", lambda _: None)
    try:
        burstgen.build()
    except burstgen.Unavailable as e:
        assert "no C compiler" in str(e)
    else:
        raise AssertionError("build() without a compiler must raise Unavailable")


def test_the_hammer_times_out_a_server_that_never_answers():
    try:
        burstgen.build()
    except burstgen.Unavailable as e:
        pytest.skip(str(e))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept():  # accepts, reads nothing, answers nothing
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        port = listener.getsockname()[1]
        out = burstgen.hammer(f"http://127.0.0.1:{port}", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 0.1, 2,
                              cycle=False, timeout=0.3)
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        listener.close()
    assert out["codes"] == {"TIMEOUT": 1} and out["requests"] == 1
    assert 0.3 <= out["latency_ms"]["max"] / 1000 < 2.0


def test_the_generator_is_told_whether_the_refreshes_carry_the_token():
    world, tokens = _world(), [f"tok{i}" for i in range(50)]
    for anonymous, flag in ((False, "0"), (True, "1")):
        sc = Scenario(patients=50, sessions=3, per_session=4, connections=8, anonymous_reads=anonymous)
        head = burstgen.spec("http://localhost:8123", world, tokens, sc, 1234.5).splitlines()[0].split()
        assert len(head) == 10 and head[9] == flag

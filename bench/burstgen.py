"""The burst's load generator, compiled (bench/burstgen.c): the same patients as `scenario.run_burst`.

The load generator shares the machine's cores with the server it measures; the asyncio one took 0.37–0.40 of
the 2 cores from T to sold out. `start` compiles the C source once (gcc or cc, cached by the source's
hash under the system's temporary directory), hands it the patients and their preferences drawn exactly as
`run_burst` draws them (same seed, same order at T), and `Run.wait` returns the same records.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.loadclient import Client
from bench.scenario import Rec, Scenario, World, draws, patient_rng, percentiles

SOURCE = Path(__file__).with_name("burstgen.c")


class Unavailable(RuntimeError):
    """No C compiler here: the asyncio generator serves instead."""


def build() -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise Unavailable("no C compiler (gcc or cc) on PATH")
    src = SOURCE.read_bytes()
    exe = Path(tempfile.gettempdir()) / f"guahao-burstgen-{hashlib.sha256(src).hexdigest()[:16]}"
    if not exe.exists():
        tmp = exe.with_suffix(f".{os.getpid()}")
        done = subprocess.run([cc, "-O2", "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
        if done.returncode != 0:
            raise Unavailable(f"{cc} failed: {done.stderr.strip()[:500]}")
        tmp.replace(exe)
    return exe


def spec(base_url: str, world: World, tokens: list[str], sc: Scenario, t_release: float,
         read_path: str | None = None) -> str:
    """The generator's input: run_burst's patients, preferences, refresh phases and order at T."""
    host, port = _address(base_url)
    read_path = read_path or f"/api/v1/slots?department_id={world.department_id}&date={world.visit_date}"
    prefs, pressing = draws(world, sc, len(tokens))
    lines = [f"{host} {port} {sc.connections} {sc.timeout} {t_release:.6f} {sc.storm_seconds} "
             f"{sc.poll_interval} {sc.tries} {sc.seed} {int(sc.anonymous_reads)}",
             read_path, str(len(world.session_ids))]
    for sid in world.session_ids:
        lines.append(f"{sid} {len(world.slots[sid])} " + " ".join(map(str, world.slots[sid])))
    lines.append(str(len(tokens)))
    for i, (tok, (_, pid, _)) in enumerate(zip(tokens, world.patients)):
        phase = patient_rng(sc, i).random() * sc.poll_interval
        lines.append(f"{pid} {phase:.6f} {tok} {len(prefs[i])} " + " ".join(map(str, prefs[i])))
    lines.append(" ".join(map(str, pressing)))
    return "\n".join(lines) + "\n"


def _address(base_url: str) -> tuple[str, int]:
    """(IPv4 address, port) of the server: the C generator connects by address, not by name."""
    c = Client.for_url(base_url, 1)
    return ("127.0.0.1" if c.host == "localhost" else c.host), c.port


class Run:
    """A generator process, started before the storm (it opens its connections and waits for T − storm)."""

    def __init__(self, exe: Path, text: str):
        fd, self.path = tempfile.mkstemp(prefix="guahao-burst-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.proc = subprocess.Popen([str(exe), self.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out: list[bytes] = []
        self._reader = threading.Thread(target=lambda: self._out.extend(self.proc.communicate()), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self) -> list[Rec]:
        self._reader.join()
        os.unlink(self.path)
        out, err = self._out
        if self.proc.returncode != 0:
            raise RuntimeError(f"the load generator failed ({self.proc.returncode}): {err.decode()[:500]}")
        return parse(out.decode())


def parse(text: str) -> list[Rec]:
    recs = []
    for line in text.splitlines():
        kind, t0, t1, status, code, patient, slot, booking = line.split()
        t1f = float(t1)
        recs.append(Rec(kind, float(t0), t1f, int(status), code, int(patient), int(slot), int(booking), t1f))
    return recs


def start(base_url: str, world: World, tokens: list[str], sc: Scenario, t_release: float,
          read_path: str | None = None) -> Run:
    return Run(build(), spec(base_url, world, tokens, sc, t_release, read_path))


def hammer(base_url: str, requests: list[bytes], seconds: float, connections: int, cycle: bool = True,
           timeout: float = 30.0) -> dict:
    """`scenario.hammer` compiled: `requests` (pre-built, see loadclient.Client.build) back to back on every
    connection for `seconds`, taken in turn (again from the first when `cycle`; otherwise until they run
    out). Returns the same figures, with `requests` the number answered, in the order they were taken."""
    host, port = _address(base_url)
    fd, path = tempfile.mkstemp(prefix="guahao-hammer-", suffix=".bin")
    with os.fdopen(fd, "wb") as f:
        f.write(f"{host} {port} {connections} {timeout} {seconds} {int(cycle)} {len(requests)}\n".encode())
        for raw in requests:
            f.write(b"%d\n" % len(raw) + raw)
    try:
        done = subprocess.run([str(build()), "hammer", path], capture_output=True)
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed ({done.returncode}): {done.stderr.decode()[:500]}")
    lines = done.stdout.decode().splitlines()
    took = float(lines[0].split()[1])
    lat, codes = [], Counter()
    for line in lines[1:]:
        t, _, code = line.split()
        lat.append(float(t))
        codes[code] += 1
    return dict(requests=len(lat), seconds=round(took, 3), rate=round(len(lat) / took, 1) if took else 0.0,
                codes=dict(codes), latency_ms=percentiles(lat), _lat=lat)

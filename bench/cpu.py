"""Who used the machine's cores during the burst: the load generator, the server, PostgreSQL, Redis, others.

The load generator shares the cores with everything it measures, so the burst's latencies are partly its
own cost. A thread samples the CPU time of each party's processes (`/proc/<pid>/stat`, Linux only) and of
the whole machine (`/proc/stat`) every `interval` seconds; `cores(t0, t1)` gives each party's average
cores over a window. The parties' pids are read once, before the burst: the server's pools and PostgreSQL's
backends for them are open by then.
"""

import os
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, process group, CPU seconds) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is the state (field 3 of proc(5))
    return name, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK


def parties(server_group: int, generator: tuple[int, ...] = ()) -> dict[str, list[int]]:
    """The pids of each party: this process and `generator` (a compiled load generator it started), the
    server's process group, PostgreSQL, Redis."""
    out: dict[str, list[int]] = {"load generator": [os.getpid(), *generator], "server": [], "PostgreSQL": [],
                                 "Redis": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in out["load generator"]:
            continue
        st = _stat(int(entry.name))
        if st is None:
            continue
        name, group, _ = st
        if group == server_group:
            out["server"].append(int(entry.name))
        elif name.startswith("postgres"):
            out["PostgreSQL"].append(int(entry.name))
        elif name.startswith("redis-server"):
            out["Redis"].append(int(entry.name))
    return out


def used(pids: list[int]) -> float:
    """CPU seconds these processes have used so far (those gone since count nothing)."""
    return sum(st[2] for st in map(_stat, pids) if st is not None)


def _machine() -> float:
    """CPU seconds the whole machine has been busy (every core, every process)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


class Sampler:
    def __init__(self, pids: dict[str, list[int]], interval: float = 0.1):
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> None:
        now = {party: used(pids) for party, pids in self.pids.items()}
        now["machine"] = _machine()
        self.samples.append((time.time(), now))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "Sampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cores(self, t0: float, t1: float) -> dict[str, float] | None:
        """Average cores each party used between the samples nearest to t0 and t1 (wall clock);
        `others`: the machine's busy time not accounted to a party (other people's jobs, the kernel's
        own threads)."""
        if len(self.samples) < 2:
            return None
        a = min(self.samples, key=lambda s: abs(s[0] - t0))
        b = min(self.samples, key=lambda s: abs(s[0] - t1))
        span = b[0] - a[0]
        if span <= 0:
            return None
        out = {party: round((b[1][party] - a[1][party]) / span, 2) for party in b[1]}
        # Clamped: the machine and the processes are read a moment apart, which can leave a hair below 0.
        out["others"] = max(0.0, round(out["machine"] - sum(v for k, v in out.items() if k != "machine"), 2))
        out["seconds"] = round(span, 2)
        return out

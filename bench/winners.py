"""Only winners: every request books a free number, for a few seconds, with the server's CPU shares.

    .venv/bin/python bench/winners.py [--workers 2] [--pool-size 4] [--connections 64] [--seconds 8]

Seeds 10 sessions x 1,000 numbers (each on its own date, so one patient may book each once) and 2,000 patients
on PostgreSQL, starts the server as production would, logs the patients in, then books back to back with fresh
patients and numbers. Prints the booking rate, latency and how much of one core each process group used:
the quick way to see what a change to the winners' path does, without the whole release scenario.
"""

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import release_burst as rb  # noqa: E402
from bench import scenario as sc  # noqa: E402
from bench.loadclient import run  # noqa: E402


def cpu_times() -> dict[int, tuple[float, str]]:
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(pid)] = ((int(fields[11]) + int(fields[12])) / hz, cmd)
    return out


def shares(before: dict, after: dict, seconds: float) -> dict[str, str]:
    groups: dict[str, float] = {}
    for pid, (t, cmd) in after.items():
        used = t - before.get(pid, (0.0, cmd))[0]
        kind = ("postgres" if "postgres" in cmd else "redis" if "redis" in cmd
                else "server" if ("uvicorn" in cmd or "granian" in cmd or "multiprocessing" in cmd)
                else "load generator" if "winners.py" in cmd else None)
        if kind and used > 0:
            groups[kind] = groups.get(kind, 0.0) + used
    return {k: f"{v / seconds:.0%}" for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pool-size", type=int, default=4)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    p.add_argument("--port", type=int, default=8399)
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    args = p.parse_args(argv)
    rb.bench_env()
    url = rb.fresh_postgres(args.pg_admin_url, "guahao_bench_winners")
    db = rb.open_db(url)
    start = datetime(2026, 12, 1, 6, 59, 0, tzinfo=rb.TZ_CN)
    world = sc.seed(db, sc.Scenario(patients=2000, sessions=10, per_session=1000),
                    start.date() + timedelta(days=7), start - timedelta(days=1), start)
    sc.spread_dates(db, world, start.date() + timedelta(days=8))
    ns = argparse.Namespace(server=args.server, workers=args.workers, port=args.port, pool_size=args.pool_size)
    proc = rb.start_server(ns, url, args.redis_url, start, time.time())
    base = f"http://127.0.0.1:{args.port}"
    try:
        tokens = run(sc.login_all(base, world))
        jobs = rb.raw_jobs(world, world)
        cursor = iter(range(len(jobs)))

        def fresh(w, i):
            _, slot_id, k = jobs[next(cursor)]
            return dict(headers={"Authorization": f"Bearer {tokens[k]}"},
                        json=dict(slot_id=slot_id, patient_id=world.patients[k][1]))
        before, t0 = cpu_times(), time.time()
        res = run(sc.hammer(base, "POST", "/api/v1/appointments", args.seconds, args.connections, fresh))
        used = shares(before, cpu_times(), time.time() - t0)
    finally:
        rb.stop_server(proc)
        db.dispose()
    lat = res["latency_ms"]
    print(f"{args.workers} {args.server} workers, pool {args.pool_size}, {args.connections} connections: "
          f"{res['rate']} bookings/s, answers {res['codes']}, latency p50/p99 {lat.get('p50')}/{lat.get('p99')} ms")
    print(f"CPU (share of one core): {used}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

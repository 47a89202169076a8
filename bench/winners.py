"""Only winners: every request books a free number, for a few seconds, with the CPU each party used.

    .venv/bin/python bench/winners.py [--workers 2] [--pool-size 8] [--connections 256] [--seconds 6]

Seeds 10 sessions x 1,000 numbers (each on its own date, so one patient may book each once) and 2,000 patients
on PostgreSQL, starts the server as production would (`guahao serve` unless --server says otherwise), logs
the patients in, then books back to back with fresh patients and numbers through the compiled load generator
(bench/burstgen.c; --generator python for the asyncio one). Before the bookings each patient refreshes the
availability page four times, as the release storm's patients do, so that the workers have their tokens
checked and their persons read ahead; `--cold` skips that. Prints the booking rate, latency, how much of
the machine's cores each party used and the server's and PostgreSQL's CPU per booking: the quick way to see
what a change to the winners' path does, without the whole release scenario.
"""

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import burstgen, cpu  # noqa: E402
from bench import release_burst as rb  # noqa: E402
from bench import scenario as sc  # noqa: E402
from bench.loadclient import Client, run  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pool-size", type=int, default=8)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--server", choices=("guahao", "uvicorn", "granian"), default="guahao")
    p.add_argument("--generator", choices=("c", "python"), default="c")
    p.add_argument("--cold", action="store_true",
                   help="no refreshes before booking: each worker meets the patients first at their booking")
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
        builder = Client.for_url(base, 1)
        if not args.cold:
            read = f"/api/v1/slots?department_id={world.department_id}&date={world.visit_date}"
            reads = [sc.request_of(builder, "GET", read, dict(headers={"Authorization": f"Bearer {t}"}))
                     for t in tokens] * 4
            burstgen.hammer(base, reads, 30.0, args.connections, cycle=False)
            time.sleep(1.0)  # the persons are read ahead in the background
        pids = cpu.parties(proc.pid)
        raws = ([sc.request_of(builder, "POST", "/api/v1/appointments", fresh(0, i)) for i in range(len(jobs))]
                if args.generator == "c" else None)
        before, t0 = {k: cpu.used(v) for k, v in pids.items()}, time.time()
        if raws is not None:
            res = burstgen.hammer(base, raws, args.seconds, args.connections, cycle=False)
        else:
            res = run(sc.hammer(base, "POST", "/api/v1/appointments", args.seconds, args.connections, fresh))
        took = time.time() - t0
        # the compiled generator's process is gone by now: only the parties still running are read
        used = {k: cpu.used(v) - before[k] for k, v in pids.items() if k != "load generator"}
    finally:
        rb.stop_server(proc)
        db.dispose()
    lat = res["latency_ms"]
    print(f"{args.workers} {args.server} workers, pool {args.pool_size}, {args.connections} connections: "
          f"{res['rate']} bookings/s, answers {res['codes']}, latency p50/p99 {lat.get('p50')}/{lat.get('p99')} ms")
    booked = res["codes"].get("201", 0)
    print("cores used (of %d): " % os.cpu_count() + ", ".join(f"{k} {v / took:.2f}" for k, v in used.items()))
    if booked:
        print("CPU per booking: " + ", ".join(f"{k} {v / booked * 1e6:.0f} µs" for k, v in used.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

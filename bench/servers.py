"""uvicorn or granian? Alternating rounds on the same machine, the same app and the same load.

    .venv/bin/python bench/servers.py [--rounds 3] [--workers 2] [--seconds 3]

Each round starts each server in turn (N workers, PostgreSQL), measures the trivial endpoint (/healthz)
and a cached availability page (/api/v1/slots) at 256 connections, and stops it. Alternating rounds keep a
noisy shared machine's drift out of the comparison; medians are printed and written to
bench/results/<date>-servers.json.
"""

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import release_burst as rb  # noqa: E402
from bench import scenario as sc_mod  # noqa: E402
from bench.loadclient import run  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--port", type=int, default=8312)
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--pg-database", default="guahao_bench_servers")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    rb.bench_env()
    url = rb.fresh_postgres(args.pg_admin_url, args.pg_database)
    db = rb.open_db(url)
    now = datetime.now(timezone.utc)
    world = sc_mod.seed(db, sc_mod.Scenario(patients=0), now.date() + timedelta(days=3), now, now)
    db.dispose()
    read = f"/api/v1/slots?department_id={world.department_id}&date={world.visit_date}"
    results: dict = {"uvicorn": {"trivial": [], "read": []}, "granian": {"trivial": [], "read": []}}
    for r in range(args.rounds):
        for server in ("uvicorn", "granian"):
            ns = argparse.Namespace(server=server, workers=args.workers, port=args.port, pool_size=4)
            proc = rb.start_server(ns, url, args.redis_url, now, time.time())
            base = f"http://127.0.0.1:{args.port}"
            try:
                for kind, path in (("trivial", "/healthz"), ("read", read)):
                    res = run(sc_mod.hammer(base, "GET", path, args.seconds, args.connections))
                    results[server][kind].append(res["rate"])
            finally:
                rb.stop_server(proc)
            rb.log(f"round {r + 1} {server}: trivial {results[server]['trivial'][-1]}/s, "
                   f"read {results[server]['read'][-1]}/s")
    medians = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in results.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now(timezone.utc):%Y-%m-%d}-servers.json"
    path.write_text(json.dumps(dict(args=vars(args), rates=results, medians=medians,
                                    note=rb.NOTE.format(cores=__import__("os").cpu_count())), indent=1))
    for s, m in medians.items():
        print(f"{s:8s} {args.workers} workers: trivial {m['trivial']:.0f}/s, cached availability {m['read']:.0f}/s")
    print(f"granian / uvicorn: trivial {medians['granian']['trivial'] / medians['uvicorn']['trivial']:.2f}, "
          f"read {medians['granian']['read'] / medians['uvicorn']['read']:.2f}  ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

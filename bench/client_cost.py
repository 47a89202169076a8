"""What the load generator costs: aiohttp against bench/loadclient.py on the same server, rounds alternated.

    .venv/bin/python bench/client_cost.py [--rounds 3] [--seconds 3] [--connections 256]

Both clients hammer the trivial endpoint (/healthz) of the same 2-worker server with the same number of
connections; the client's CPU time per request is read from this process's own clock (the server runs in
other processes). On a 2-core machine every microsecond the client spends is taken from the server, so the
cheaper client lets the benchmark see more of the server.
"""

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import release_burst as rb  # noqa: E402
from bench import scenario as sc_mod  # noqa: E402
from bench.loadclient import run  # noqa: E402


async def aiohttp_hammer(base: str, path: str, seconds: float, connections: int) -> dict:
    import aiohttp

    loop = asyncio.get_running_loop()
    n = 0
    end = loop.time() + seconds
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=connections)) as http:
        async def worker():
            nonlocal n
            while loop.time() < end:
                async with http.get(path) as r:
                    await r.read()
                n += 1
        t0 = loop.time()
        await asyncio.gather(*(worker() for _ in range(connections)))
        took = loop.time() - t0
    return dict(requests=n, rate=n / took)


def measure(kind: str, base: str, seconds: float, connections: int) -> dict:
    cpu0 = time.process_time()
    if kind == "aiohttp":
        res = asyncio.run(aiohttp_hammer(base, "/healthz", seconds, connections))
    else:
        res = run(sc_mod.hammer(base, "GET", "/healthz", seconds, connections))
    cpu = time.process_time() - cpu0
    return dict(rate=res["rate"], client_cpu_us=cpu / max(1, res["requests"]) * 1e6)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--port", type=int, default=8313)
    args = p.parse_args(argv)
    rb.bench_env()
    ns = argparse.Namespace(server="uvicorn", workers=2, port=args.port, pool_size=4)
    proc = rb.start_server(ns, rb.fresh_sqlite(), None, datetime.now(timezone.utc), time.time())
    base = f"http://127.0.0.1:{args.port}"
    out: dict = {"aiohttp": [], "bench/loadclient.py": []}
    try:
        for r in range(args.rounds):
            for kind in out:
                out[kind].append(measure(kind, base, args.seconds, args.connections))
                rb.log(f"round {r + 1} {kind}: {out[kind][-1]}")
    finally:
        rb.stop_server(proc)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("rate", "client_cpu_us")} for k, v in out.items()}
    for k, m in med.items():
        print(f"{k:14s} /healthz {m['rate']:7.0f}/s, client CPU {m['client_cpu_us']:5.0f} µs per request")
    a, b = med["aiohttp"], med["bench/loadclient.py"]
    print(f"bench/loadclient.py vs aiohttp: {b['rate'] / a['rate']:.2f}x the rate, "
          f"{a['client_cpu_us'] / b['client_cpu_us']:.2f}x less client CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one request costs inside the application, without a server or a network: CPU per ASGI call.

    .venv/bin/python bench/asgi_cost.py [--n 2000] [PATH ...]

Calls the app in-process (SQLite in a temporary directory, empty catalog) and prints microseconds per
request for each GET path (default: /healthz and /api/v1/hospitals), so framework costs — routing,
dependencies, middleware — can be compared before and after a change without the noise of a load test.
`--profile` prints a pyinstrument profile of the first path (pip install pyinstrument).
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hotpath_cost import call as call_app, scope_of  # noqa: E402


async def call(app, path: str) -> int:
    raw, _, query = path.partition("?")
    status, _ = await call_app(app, scope_of("GET", raw, [(b"host", b"bench")], query.encode()))
    return status


async def measure(app, path: str, n: int) -> float:
    for _ in range(20):
        await call(app, path)
    t = time.process_time()
    for _ in range(n):
        await call(app, path)
    return (time.process_time() - t) / n * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", default=["/healthz", "/api/v1/hospitals"])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="guahao-asgi-")
    os.environ.update(GUAHAO_SECRET_KEY="bench-only-secret-key-0123456789abcdef",
                      GUAHAO_DATA_KEY="bench-only-data-key-0123456789abcdef0",
                      GUAHAO_DATABASE_URL=f"sqlite:///{tmp}/asgi.sqlite")
    from guahao.app import create_app
    from guahao.migrate import upgrade

    app = create_app()
    upgrade(app.state.db.engine)
    for path in args.paths:
        status = asyncio.run(call(app, path))
        print(f"{path:40s} {asyncio.run(measure(app, path, args.n)):8.0f} µs CPU per request (HTTP {status})")
    if args.profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0002)
        prof.start()
        asyncio.run(measure(app, args.paths[0], args.n))
        prof.stop()
        print(prof.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The release-time burst benchmark: 07:00, a few hundred numbers, thousands of patients.

    .venv/bin/python bench/release_burst.py            # PostgreSQL + Redis, then SQLite; ~3 minutes

Starts the server as production would (PostgreSQL through psycopg with a small pool per worker, Redis for
the release gate, several worker processes), seeds one department with 10 sessions x 30 numbers released at
T and 5,000 patients logged in before T, runs the refresh storm from T-20 s and the booking rush at T, then
verifies every booking against the database and every answer the clients got. In the same run it measures
the raw database limit (the same booking transaction through psycopg, no HTTP), the HTTP ceiling (a trivial
JSON endpoint) and sold-out answers, and replays the burst on SQLite with 1,000 patients.

Writes bench/results/<date>-release_burst.json and .png. `--help` lists the knobs (patients, skew, numbers,
connections, workers, server) so the scenario can be replayed differently.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import burstgen, cpu  # noqa: E402
from bench.loadclient import Client  # noqa: E402
from bench.loadclient import run as run_loop  # noqa: E402  (asyncio.run on uvloop)

BENCH_SECRET = "bench-only-secret-key-0123456789abcdef"
BENCH_DATA_KEY = "bench-only-data-key-0123456789abcdef0"
TZ_CN = timezone(timedelta(hours=8))
NOTE = ("The load generator ({generator}), the server workers, PostgreSQL and Redis all share this "
        "machine's {cores} cores (and other people's jobs): rates are lower bounds; compare ratios.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patients", type=int, default=5000)
    p.add_argument("--sqlite-patients", type=int, default=1000, help="0 skips the SQLite run")
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--per-session", type=int, default=30, help="numbers per session")
    p.add_argument("--skew", type=float, default=1.5, help="Zipf exponent of session popularity")
    p.add_argument("--tries", type=int, default=5)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--storm-seconds", type=float, default=20.0)
    p.add_argument("--anonymous-reads", action="store_true",
                   help="the refreshes carry no token: the server meets each patient first at their booking")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--server", choices=("guahao", "uvicorn", "granian"), default="guahao",
                   help="guahao: `guahao serve` (uvicorn workers, a listening socket each); uvicorn: uvicorn's "
                        "own --workers (one shared socket); granian")
    p.add_argument("--pool-size", type=int, default=8,
                   help="database connections per worker (8: the production default, pool 4 + overflow 4)")
    p.add_argument("--phase-seconds", type=float, default=6.0, help="total length of each ceiling measurement")
    p.add_argument("--slices", type=int, default=4, help="interleaved slices per ceiling measurement")
    p.add_argument("--generator", choices=("c", "python"), default="c",
                   help="the load generator of the burst and the ceilings: c (bench/burstgen.c, compiled here with gcc; "
                        "the asyncio one if no compiler) or python (bench/scenario.py's asyncio one)")
    p.add_argument("--port", type=int, default=8310)
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--pg-database", default="guahao_bench")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--tag", default="", help="suffix for the result file names")
    return p.parse_args(argv)


def bench_env() -> None:
    """This process seeds with the server's keys; cheap password hashes (login is not timed)."""
    os.environ.update(GUAHAO_SECRET_KEY=BENCH_SECRET, GUAHAO_DATA_KEY=BENCH_DATA_KEY,
                      GUAHAO_ENVIRONMENT="production", GUAHAO_ARGON2_TIME_COST="1",
                      GUAHAO_ARGON2_MEMORY_KIB="1024")


# --- databases and the server -----------------------------------------------------------------------------

def fresh_postgres(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def fresh_sqlite() -> str:
    path = ROOT / "bench" / "var" / "release_burst.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def open_db(url: str, pool_size: int = 8):
    from guahao.db import make_database
    from guahao.migrate import upgrade

    db = make_database(url, pool_size=pool_size, max_overflow=0)
    upgrade(db.engine)
    return db


def start_server(args, db_url: str, redis_url: str | None, server_now: datetime, anchor: float):
    env = dict(os.environ, GUAHAO_DATABASE_URL=db_url, GUAHAO_NOW=server_now.isoformat(),
               GUAHAO_NOW_ANCHOR=repr(anchor), GUAHAO_DB_POOL_SIZE=str(args.pool_size),
               GUAHAO_DB_MAX_OVERFLOW="0", GUAHAO_REDIS_PREFIX="guahao:bench:", PYTHONPATH=str(ROOT),
               # Every simulated patient connects from 127.0.0.1, standing for thousands of real addresses,
               # and the ceiling phases reuse each simulated account many times a minute: the limits are
               # counted exactly as in production (every attempt pays its Redis round trip), only their
               # thresholds are lifted out of the way.
               GUAHAO_RATE_BOOKING_IP="100000000/60", GUAHAO_RATE_LOGIN_IP="100000000/60",
               GUAHAO_RATE_BOOKING_ACCOUNT="100000000/60", GUAHAO_RATE_BOOKING_PERSON="100000000/60")
    if redis_url:
        env["GUAHAO_REDIS_URL"] = redis_url
    else:
        env.pop("GUAHAO_REDIS_URL", None)
    py = sys.executable
    if args.server == "guahao":
        cmd = [py, "-m", "guahao.cli", "serve", "--host", "127.0.0.1", "--port", str(args.port),
               "--workers", str(args.workers), "--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    elif args.server == "uvicorn":
        cmd = [py, "-m", "uvicorn", "guahao.asgi:app", "--host", "127.0.0.1", "--port", str(args.port),
               "--workers", str(args.workers), "--no-access-log", "--log-level", "warning",
               "--backlog", "4096"]
    else:
        cmd = [py, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(args.port),
               "--workers", str(args.workers), "--no-access-log", "--log-level", "warning",
               "--backlog", "4096", "guahao.asgi:app"]
    # The server's log goes to a file, never to a pipe nobody reads while the load runs: a full pipe blocks
    # the worker writing to it (a burst of tracebacks once stalled requests for 30 s that way).
    log_path = Path(tempfile.gettempdir()) / f"guahao-bench-server-{args.port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file,
                                start_new_session=True)
    proc.log_path = log_path
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1).status_code == 200:
                time.sleep(1.0)  # let every worker finish importing
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError("server did not answer /healthz within 30 s")


def stop_server(proc) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- the raw database limit -------------------------------------------------------------------------------

def raw_jobs(raw, world) -> list[tuple[int, int, int]]:
    """(session id, slot id, patient index): each patient books up to four raw sessions, each on its own
    date eight days apart, so L1–L4 hold exactly as in the app."""
    n, k = len(world.patients), len(raw.session_ids)
    used = {sid: 0 for sid in raw.session_ids}
    out = []
    for j in range(min(4 * n, sum(len(v) for v in raw.slots.values()))):
        sid = raw.session_ids[(j + j // n) % k]
        if used[sid] < len(raw.slots[sid]):
            out.append((sid, raw.slots[sid][used[sid]], j % n))
            used[sid] += 1
    return out


async def raw_db_rate(pg_url: str, job_list, world, conns: int, concurrency: int, seconds: float,
                      now: datetime) -> dict:
    """The app's booking transaction straight through psycopg: the app's own statements
    (guahao/booking/pg_async.py) in the app's order, no HTTP, no framework, only the checks that need them."""
    from psycopg_pool import AsyncConnectionPool

    from bench.scenario import percentiles
    from guahao.booking import pg_async as pa
    from guahao.booking import rules as brules
    from guahao.errors import DomainError

    class Refused(Exception):
        pass

    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    today = now.astimezone(TZ_CN).date()
    jobs = iter(job_list)
    span = brules.limit_span(brules.LimitPolicy())
    lat, outcomes = [], {"booked": 0, "refused": 0}
    loop = asyncio.get_running_loop()

    async def book(c, account_id, patient_id, slot_id):
        # The app's statements and round trips (the person known ahead, as the app knows it at T); only the
        # rules are trimmed.
        store = pa.BookingStore(c, person_ahead=(person_of[patient_id], today, span))
        try:
            row = await store.slot_for_booking(slot_id, account_id, patient_id)
            if row.booked >= row.capacity or row.held:
                raise Refused
            _, visits = await store.lock_person(row.person_id, today, row.visit_date, span)
            try:
                brules.check_limits([brules.Visit(*v) for v in visits],
                                    brules.Visit(row.hospital_id, row.department_id, row.visit_date))
            except DomainError:
                raise Refused from None
            _, places_left = await store.book_place(dict(
                serial_number=f"{row.visit_date:%y%m%d}{random.randrange(10**10):010d}", account_id=account_id,
                patient_id=patient_id, person_id=row.person_id, slot_id=slot_id, session_id=row.session_id,
                hospital_id=row.hospital_id, department_id=row.department_id, doctor_id=row.doctor_id,
                visit_date=row.visit_date, period=row.period, period_start=row.slot_start,
                period_end=row.slot_end, seq=row.seq, number_type=row.number_type, fee=row.fee,
                insurance_type="self_pay", created_at=now, status="booked", rescheduled_from_id=None))
            if places_left is None:
                raise Refused
        finally:
            await c.rollback()  # after a refusal; a no-op once committed

    async with AsyncConnectionPool(url, min_size=conns, max_size=conns, open=False,
                                   kwargs=dict(autocommit=True), configure=pa.prepare) as pool:
        await pool.wait()
        async with pool.connection() as c:
            person_of = dict(await (await c.execute("SELECT id, person_id FROM patients")).fetchall())
        end = loop.time() + seconds

        async def worker():
            while loop.time() < end:
                try:
                    sid, slot_id, i = next(jobs)
                except StopIteration:
                    return
                account_id, patient_id, _ = world.patients[i]
                t0 = time.perf_counter()
                async with pool.connection() as c:
                    try:
                        await book(c, account_id, patient_id, slot_id)
                        outcomes["booked"] += 1
                    except Refused:
                        outcomes["refused"] += 1
                lat.append(time.perf_counter() - t0)

        t0 = loop.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = loop.time() - t0
    return dict(connections=conns, concurrency=concurrency, seconds=round(took, 3),
                transactions=len(lat), booked=outcomes["booked"], refused=outcomes["refused"],
                rate=round(len(lat) / took, 1), latency_ms=percentiles(lat), _lat=lat)


# --- one scenario on one database -------------------------------------------------------------------------

def run_scenario(args, kind: str, db_url: str, redis_url: str | None, patients: int, raw: bool) -> dict:
    from bench import scenario as sc_mod
    from guahao.schedule.models import ClinicSession  # noqa: F401  (models registered)
    import guahao.models  # noqa: F401

    sc = sc_mod.Scenario(patients=patients, sessions=args.sessions, per_session=args.per_session,
                         skew=args.skew, tries=args.tries, connections=args.connections,
                         storm_seconds=args.storm_seconds, seed=args.seed, anonymous_reads=args.anonymous_reads)
    anchor = time.time()
    server_start = datetime(2026, 12, 1, 6, 59, 0, tzinfo=TZ_CN)  # the server's clock reads this at `anchor`
    visit_date = server_start.date() + timedelta(days=7)

    def server_time(t: float) -> datetime:
        return server_start + timedelta(seconds=t - anchor)

    log(f"[{kind}] seeding {sc.numbers} numbers and {patients} patients …")
    db = open_db(db_url)
    world = sc_mod.seed(db, sc, visit_date, server_start + timedelta(days=1), server_start)
    raw_world = None
    if raw:
        raw_sc = sc_mod.Scenario(patients=0, sessions=10, per_session=2000)
        raw_world = sc_mod.seed(db, raw_sc, visit_date + timedelta(days=1), server_start - timedelta(days=1),
                                server_start)
        # Ten dates: a patient books each raw session at most once (L1), as in the app.
        sc_mod.spread_dates(db, raw_world, visit_date + timedelta(days=8))
    proc = start_server(args, db_url, redis_url, server_start, anchor)
    base = f"http://127.0.0.1:{args.port}"
    out: dict = dict(database=kind, redis=bool(redis_url), scenario=sc.__dict__ | dict(numbers=sc.numbers))
    try:
        log(f"[{kind}] {args.workers} {args.server} workers up; logging {patients} patients in (not timed) …")
        t = time.time()
        tokens = run_loop(sc_mod.login_all(base, world))
        out["login_seconds"] = round(time.time() - t, 1)
        t_release = time.time() + sc.storm_seconds + 1.0
        sc_mod.set_release(db, world, server_time(t_release))
        out["T_server_clock"] = server_time(t_release).astimezone(TZ_CN).isoformat(timespec="milliseconds")
        log(f"[{kind}] T = {out['T_server_clock']} (server clock); refresh storm from T-{sc.storm_seconds:g}s …")
        gen = None
        if args.generator == "c":
            try:
                gen = burstgen.start(base, world, tokens, sc, t_release)
            except burstgen.Unavailable as e:
                log(f"[{kind}] the compiled load generator is unavailable ({e}): the asyncio one runs the burst")
        out["generator"] = "c" if gen else "python"
        with cpu.Sampler(cpu.parties(proc.pid, (gen.pid,) if gen else ())) as sampler:
            if gen is not None:
                recs = gen.wait()
            else:
                recs, _ = run_loop(without_gc(sc_mod.run_burst(base, world, tokens, sc, t_release)))
        out["burst"] = sc_mod.analyze(recs, sc, world)
        sold_out = out["burst"]["sold_out_after_s"] or out["burst"]["burst_seconds"]
        out["cpu_cores"] = dict(
            machine_cores=os.cpu_count(),
            storm_last_5s=sampler.cores(t_release - 5, t_release),
            first_half_second=sampler.cores(t_release, t_release + 0.5),
            until_sold_out=sampler.cores(t_release, t_release + sold_out))
        window = out["cpu_cores"]["until_sold_out"]
        if window:
            # CPU per answer: steadier across runs than latency on a noisy machine (A/B of server changes).
            answered = sum(0 <= r.t1 <= window["seconds"] for r in recs)
            out["cpu_cores"]["server_cpu_us_per_answer_until_sold_out"] = (
                round(window["server"] * window["seconds"] / answered * 1e6, 1) if answered else None)
        out["timeline"] = sc_mod.timeline(recs)
        log(f"[{kind}] burst done in {out['burst']['burst_seconds']}s after T; verifying against the database …")
        out["verification"] = sc_mod.verify(db, world, recs, sc)
        out["correctness_failures"] = sc_mod.correctness_failures(out["burst"], out["verification"])

        all_slots = [s for sls in world.slots.values() for s in sls]

        def sold_out_request(w, i):
            k = (w * 7919 + i * 104729) % len(tokens)
            return dict(headers={"Authorization": f"Bearer {tokens[k]}"},
                        json=dict(slot_id=all_slots[(w + i * 31) % len(all_slots)],
                                  patient_id=world.patients[k][1]))
        read_path = f"/api/v1/slots?department_id={world.department_id}&date={visit_date}"
        if raw:
            jobs = raw_jobs(raw_world, world)
            pos = 0  # jobs[pos:] are the fresh numbers not yet booked by either phase

            def fresh_booking_at(j):
                sid, slot_id, k = jobs[j]
                return dict(headers={"Authorization": f"Bearer {tokens[k]}"},
                            json=dict(slot_id=slot_id, patient_id=world.patients[k][1]))
        # The ceilings are measured in interleaved slices (A B C D, A B C D, …) so that the machine's
        # drift (other people's jobs) falls on all of them alike: their ratios are what to compare.
        log(f"[{kind}] ceilings, interleaved: sold-out answers, trivial endpoint, cached reads"
            + (", HTTP booking capacity, raw database limit" if raw else "") + " …")
        slices: dict = {k: [] for k in ("sold_out_phase", "trivial_phase", "read_phase", "http_booking_phase",
                                        "raw_db_phase")}
        per = args.phase_seconds / args.slices
        compiled = out["generator"] == "c"
        builder = Client.for_url(base, 1)
        sold_out_raws = [sc_mod.request_of(builder, "POST", "/api/v1/appointments", sold_out_request(w, i))
                         for i in range(16) for w in range(sc.connections)] if compiled else None

        server_pids = cpu.parties(proc.pid)["server"]

        def ceiling(method, path, make_kwargs=None):
            before = cpu.used(server_pids)
            if not compiled:
                r = run_loop(sc_mod.hammer(base, method, path, per, sc.connections, make_kwargs))
            else:
                raws = sold_out_raws if make_kwargs else [builder.build(method, path)]
                r = burstgen.hammer(base, raws, per, sc.connections)
            r["server_cpu_s"] = cpu.used(server_pids) - before
            return r

        for _ in range(args.slices):
            slices["sold_out_phase"].append(ceiling("POST", "/api/v1/appointments", sold_out_request))
            slices["trivial_phase"].append(ceiling("GET", "/healthz"))
            slices["read_phase"].append(ceiling("GET", read_path))
            if raw and pos < len(jobs):
                if compiled:
                    r = burstgen.hammer(base, [sc_mod.request_of(builder, "POST", "/api/v1/appointments",
                                                                 fresh_booking_at(j)) for j in range(pos, len(jobs))],
                                        per, sc.connections, cycle=False)
                else:
                    cursor = iter(range(pos, len(jobs)))
                    r = run_loop(sc_mod.hammer(base, "POST", "/api/v1/appointments", per, sc.connections,
                                               lambda w, i: fresh_booking_at(next(cursor))))
                slices["http_booking_phase"].append(r)
                pos += r["requests"]
                if pos >= len(jobs):
                    log(f"[{kind}] every fresh number of the raw sessions is booked: no more raw slices")
                    continue
                r = run_loop(raw_db_rate(db_url, jobs[pos:], world, args.workers * args.pool_size,
                                         sc.connections, per, server_start))
                r["requests"], r["codes"] = r["transactions"], {"booked": r["booked"], "refused": r["refused"]}
                slices["raw_db_phase"].append(r)
                pos += r["transactions"]
        for k, v in slices.items():
            if v:
                out[k] = sc_mod.merge(v)
        out["db_connections"] = args.workers * args.pool_size
    finally:
        stop_server(proc)
    log_text = proc.log_path.read_text(errors="replace")
    out["server_log"] = dict(path=str(proc.log_path), tracebacks=log_text.count("Traceback"),
                             error_lines=sum(" ERROR " in ln or ln.startswith("ERROR") for ln in log_text.splitlines()))
    db.dispose()
    b = out["burst"]
    hb = out.get("http_booking_phase", {}).get("rate")
    rawr = out.get("raw_db_phase", {}).get("rate")
    so = out["sold_out_phase"]["rate"]
    out["ratios"] = dict(
        http_booking_per_s_over_raw_db_tx_per_s=round(hb / rawr, 3) if hb and rawr else None,
        sold_out_answers_per_s_over_http_booking_per_s=round(so / hb, 2) if hb else None,
        sold_out_answers_per_s_over_trivial_per_s=round(so / out["trivial_phase"]["rate"], 3),
        burst_booking_attempts_per_s_over_raw_db_tx_per_s=(
            round(b["booking_attempts_per_s"] / rawr, 3) if rawr else None),
    )
    return out


async def without_gc(coro):
    """Run the burst with this process's cyclic garbage collector off: a full collection over the
    generator's records stalls its event loop, and every answer in flight meanwhile would be timed late as
    if the server had been slow (gen-2 pauses showed as lumps of ~100 ms answers after sold out)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return await coro
    finally:
        gc.enable()
        gc.unfreeze()


def _cpu_lines(c: dict | None) -> list[str]:
    if not c:
        return []
    lines = []
    if c.get("server_cpu_us_per_answer_until_sold_out"):
        lines.append(f"  server CPU per answer, T to sold out: {c['server_cpu_us_per_answer_until_sold_out']} µs")
    for label, key in (("T to sold out", "until_sold_out"), ("first 0.5 s", "first_half_second"),
                       ("storm, last 5 s", "storm_last_5s")):
        w = c.get(key)
        if w:
            lines.append(f"  cores used ({label}, of {c['machine_cores']}): " + ", ".join(
                f"{k} {w[k]}" for k in ("load generator", "server", "PostgreSQL", "Redis", "others")))
    return lines


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- output -----------------------------------------------------------------------------------------------

def chart(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(runs), figsize=(6.5 * len(runs), 9), squeeze=False, sharex="col")
    for col, run in enumerate(runs):
        tl = run["timeline"]
        t, w = tl["t"], tl["step_s"] * 0.9
        ax = axes[0][col]
        ax.bar(t, tl["bookings"], width=w, align="edge", color="#2a7")
        ax.set_title(f"{run['database']}: {run['scenario']['patients']} patients, "
                     f"{run['scenario']['numbers']} numbers")
        ax.set_ylabel("bookings / 100 ms")
        ax = axes[1][col]
        ax.bar(t, tl["answers"], width=w, align="edge", color="#37c", label="booking answers")
        ax.plot(t, tl["reads"], color="#c73", lw=1, label="availability reads")
        ax.set_ylabel("answers / 100 ms")
        ax.legend(loc="upper right", fontsize=8)
        ax = axes[2][col]
        ax.plot(t, [p if p is not None else float("nan") for p in tl["p99_ms"]], color="#a33", marker=".")
        ax.set_ylabel("p99 booking latency (ms)")
        ax.set_xlabel("seconds from T (release)")
        for row in axes:
            row[col].axvline(0, color="#888", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(result: dict) -> str:
    lines = ["", "=" * 100, f"guahao release burst — {result['started_at']} — {result['machine']}",
             result["note"], ""]
    for run in result["runs"]:
        b, v, r = run["burst"], run["verification"], run["ratios"]
        lat, slow = b["latency_ms"], b.get("slow_attempts", {})
        lines += [
            f"[{run['database']}{' + Redis' if run['redis'] else ''}] {b['patients']} patients, {b['numbers']} "
            f"numbers, skew {run['scenario']['skew']}, {run['scenario']['connections']} connections, "
            f"T = {run['T_server_clock']}",
            f"  sold out after {b['sold_out_after_s']} s; burst over after {b['burst_seconds']} s; "
            f"{b['booking_attempts']} attempts, {b['successful_bookings']} booked",
            f"  booking attempts {b['booking_attempts_per_s']}/s, bookings {b['successful_bookings_per_s']}/s, "
            f"losing answers {b['losing_answers_per_s']}/s; reads {b['reads_per_s_storm']}/s in the storm, "
            f"{b['reads_per_s_burst']}/s in the burst ({b['reads_304_share']:.0%} 304)",
            f"  latency ms p50/p95/p99/max: book {_lat(lat['book'])}  booked {_lat(lat['book_success'])}  "
            f"losing {_lat(lat['book_losing'])}",
            f"                              read (storm) {_lat(lat['read_storm'])}  read (burst) "
            f"{_lat(lat['read_burst'])}",
            f"                              book, until the patient's coroutine resumed (+ the generator's own "
            f"delay) {_lat(lat.get('book_as_seen_by_patients', {}))}",
            f"  attempts slower than 100 ms: {slow.get('over_100ms')} ({slow.get('sent_before_sold_out')} sent "
            f"before sold out, {slow.get('in_first_wave')} of the first wave of {slow.get('first_wave')}; by answer "
            f"{slow.get('by_answer')}); p99 < 100 ms allows {slow.get('allowed_by_p99')}",
            f"  first wave (sent at T before any answer): {slow.get('first_wave_answers')}, the last answered "
            f"after {slow.get('first_wave_last_answer_ms')} ms",
            *_cpu_lines(run.get("cpu_cores")),
            f"  5xx {b['http_5xx']}, timeouts {b['timeouts']}, connection errors {b['connection_errors']}; "
            f"answers {b['answer_codes']}",
            f"  server log: {run.get('server_log', {}).get('tracebacks')} tracebacks, "
            f"{run.get('server_log', {}).get('error_lines')} error lines ({run.get('server_log', {}).get('path')})",
            f"  DB check: bookings {v['bookings']}/{v['expected']}, slots twice {v['slots_held_twice']}, "
            f"over capacity {v['sessions_over_capacity']}, counter mismatches {v['session_counter_mismatches']}, "
            f"limit breaches {v['limit_breaches'] or 0}, false successes {v['false_success_answers']}, "
            f"bookings without success answer {v['bookings_without_success_answer']} -> "
            f"{'OK' if v['ok'] else 'FAILED'}",
            (f"  HTTP booking capacity (every request books a free number): {run['http_booking_phase']['rate']}/s "
             f"(p50/p95/p99/max ms {_lat(run['http_booking_phase']['latency_ms'])}; "
             f"answers {run['http_booking_phase']['codes']})" if "http_booking_phase" in run else "  (no raw phases)"),
            f"  ceilings: sold-out answers {run['sold_out_phase']['rate']}/s "
            f"(p99 {run['sold_out_phase']['latency_ms'].get('p99')} ms{_cpu_each(run['sold_out_phase'])}), "
            f"trivial endpoint {run['trivial_phase']['rate']}/s{_cpu_each(run['trivial_phase'], ' (', ')')}, "
            f"availability reads {run['read_phase']['rate']}/s{_cpu_each(run['read_phase'], ' (', ')')}"
            + (f", raw DB booking tx {run['raw_db_phase']['rate']}/s "
               f"({run.get('db_connections', '?')} connections, {run['scenario']['connections']} clients)" if "raw_db_phase" in run else ""),
            f"  ratios: HTTP booking / raw DB tx = {r['http_booking_per_s_over_raw_db_tx_per_s']} (target ≥ 0.5); "
            f"sold-out answers / HTTP booking = {r['sold_out_answers_per_s_over_http_booking_per_s']} (target ≥ 5); "
            f"sold-out answers / trivial = {r['sold_out_answers_per_s_over_trivial_per_s']}; "
            f"burst attempts / raw DB tx = {r['burst_booking_attempts_per_s_over_raw_db_tx_per_s']}",
            "",
        ]
    lines += [f"JSON: {result['json']}", f"chart: {result['png']}", "=" * 100]
    return "\n".join(lines)


def _cpu_each(phase: dict, before: str = "; ", after: str = "") -> str:
    us = phase.get("server_cpu_us_per_request")
    return f"{before}server CPU {us} µs each{after}" if us else ""


def _lat(p: dict) -> str:
    return "/".join(str(p.get(k, "-")) for k in ("p50", "p95", "p99", "max")) if p else "-"


def main(argv=None) -> int:
    args = parse_args(argv)
    bench_env()
    import signal

    # Killed from outside: unwind, so that the server processes are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(timezone.utc)
    cores = os.cpu_count()
    result = dict(started_at=started.isoformat(timespec="seconds"),
                  machine=f"{platform.machine()} {cores} cores, Python {platform.python_version()}, "
                          f"{args.workers} {args.server} workers, pool {args.pool_size}/worker",
                  note="", args=vars(args), runs=[])
    pg_url = fresh_postgres(args.pg_admin_url, args.pg_database)
    result["runs"].append(run_scenario(args, "postgresql", pg_url, args.redis_url, args.patients, raw=True))
    if args.sqlite_patients:
        result["runs"].append(run_scenario(args, "sqlite", fresh_sqlite(), args.redis_url, args.sqlite_patients,
                                           raw=False))
    gens = {run["generator"] for run in result["runs"]}
    result["note"] = NOTE.format(cores=cores, generator=(
        "bench/burstgen.c, one compiled process at a time" if gens == {"c"}
        else "one asyncio process" if gens == {"python"} else "compiled for one run, asyncio for the other"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%d}-release_burst{('-' + args.tag) if args.tag else ''}"
    result["json"], result["png"] = str(out / f"{stem}.json"), str(out / f"{stem}.png")
    chart(result["runs"], Path(result["png"]))
    Path(result["json"]).write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    print(summary(result))
    return 0 if all(not run["correctness_failures"] for run in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Runs the jobs on APScheduler (see docs/worker.md for why): `guahao worker` in its own process, or
inside the server process with `guahao serve --with-worker`."""

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from guahao.clock import Clock
from guahao.db import Database
from guahao.worker.jobs import JOBS, run_job

log = logging.getLogger("guahao.worker")


def _schedule(scheduler, db: Database, clock: Clock):
    from datetime import datetime, timezone

    for job in JOBS:
        # First run right away, so a fresh start catches up at once; coalesce: a late tick runs once.
        scheduler.add_job(lambda j=job: run_job(db, j, clock.now()), IntervalTrigger(seconds=job.seconds),
                          id=job.name, name=job.name, max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))
    return scheduler


def run_forever(db: Database, clock: Clock) -> None:
    sched = _schedule(BlockingScheduler(timezone="UTC"), db, clock)
    log.info("guahao worker: %d jobs scheduled", len(JOBS))
    sched.start()


def start_background(db: Database, clock: Clock) -> BackgroundScheduler:
    sched = _schedule(BackgroundScheduler(timezone="UTC", daemon=True), db, clock)
    sched.start()
    return sched

"""The worker's jobs. Each runs in its own transaction and is idempotent: run twice, or in two workers at
once, and nothing doubles (conditional updates, unique outbox keys, per-person locks)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from guahao.db import Database

log = logging.getLogger("guahao.worker")


@dataclass(frozen=True)
class Job:
    name: str
    seconds: int  # how often the scheduler runs it
    run: Callable  # (session, now) -> int


def _windows(s, now):
    from guahao.schedule.planning import generate_windows

    return generate_windows(s, now)


def _no_shows(s, now):
    from guahao.attendance.service import sweep_no_shows

    marked, bans = sweep_no_shows(s, now)
    return marked + bans


def _reminders(s, now):
    from guahao.notifications.reminders import due_reminders

    return due_reminders(s, now)


def _waitlist(s, now):
    from guahao.waitlist.service import close_past, fill_all

    return fill_all(s, now) + close_past(s, now)


def _unpaid(s, now):
    from guahao.billing.service import expire_unpaid

    return expire_unpaid(s, now)


def _refunds(s, now):
    from guahao.billing.service import retry_refunds

    succeeded, _still_failed = retry_refunds(s, now)
    return succeeded


def _notices(s, now):
    from guahao.notifications.service import booking_notices

    return booking_notices(s, now)


_senders: list = []


def _dispatch(s, now):
    from guahao.config import get_settings
    from guahao.notifications.senders import sender_from_settings
    from guahao.notifications.service import dispatch

    if not _senders:  # one sender (and its HTTP connection pool) per worker process
        _senders.append(sender_from_settings(get_settings()))
    return dispatch(s, now, _senders[0])


JOBS: tuple[Job, ...] = (
    Job("generate_sessions", 600, _windows),
    Job("expire_unpaid", 30, _unpaid),
    # Failed refunds, and refunds never sent (billing/outbox.py), until the provider takes them.
    Job("retry_refunds", 300, _refunds),
    Job("waitlist_fill", 30, _waitlist),
    Job("no_show_sweep", 60, _no_shows),
    Job("booking_notices", 10, _notices),
    Job("reminders", 60, _reminders),
    Job("dispatch", 5, _dispatch),
)


def run_job(db: Database, job: Job, now: datetime) -> int:
    try:
        with db.transaction() as s:
            n = job.run(s, now)
    except Exception:  # one failing job must not stop the others; it runs again next tick
        log.exception("worker job %s failed", job.name)
        return -1
    if n:
        log.info("worker job %s: %s", job.name, n)
    return n


def run_all(db: Database, now_fn: Callable[[], datetime]) -> dict[str, int]:
    """Every job once, in order (the `--once` mode and the tests)."""
    return {job.name: run_job(db, job, now_fn()) for job in JOBS}

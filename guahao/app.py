"""The FastAPI application: wires settings, database and clock, and mounts every feature's routers."""

import asyncio
import inspect
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from guahao.clock import Clock, clock_from_setting
from guahao.config import Settings, get_settings
from guahao.db import Database, make_database
from guahao import openapi_fixes
from guahao.errors import ERROR_RESPONSES, install_handlers
from guahao.security import logmask
from guahao.security.access import enforce
from guahao.security.bodylimit import BodyLimit
from guahao.security.browser import BrowserGuard
from guahao.security.ratelimit import RateLimiter

log = logging.getLogger("guahao")
STATIC = Path(__file__).parent / "web" / "static"


# FastAPI's own OpenTelemetry hooks (newer FastAPI) ask OpenTelemetry for its global providers on every
# request, reading environment variables each time (~2% of a worker's CPU at the release instant); guahao
# configures no OpenTelemetry, so they are switched off where FastAPI has them.
_NO_TELEMETRY = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                 if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def routers():
    from guahao.accounts.api import router as accounts
    from guahao.attendance.api import router as attendance
    from guahao.audit.api import router as audit
    from guahao.billing.api import router as billing
    from guahao.billing.pages import router as billing_pages
    from guahao.booking.api import router as booking
    from guahao.catalog.api import router as catalog
    from guahao.notifications.api import router as notifications
    from guahao.release.api import router as release
    from guahao.schedule.api import router as schedule
    from guahao.schedule.staff_api import router as schedule_staff
    from guahao.staff.api import router as staff
    from guahao.visits.api import router as visits
    from guahao.visits.pages import router as visit_pages
    from guahao.waitlist.api import router as waitlist
    from guahao.web.account_pages import router as account_pages
    from guahao.web.console_pages import router as console_pages
    from guahao.web.patient_pages import router as patient_pages

    return [accounts, catalog, schedule, booking, staff,
            release, schedule_staff, waitlist, notifications, attendance, visits, billing,
            account_pages, patient_pages, console_pages, visit_pages, billing_pages, audit]


def _release_gate(app: FastAPI, settings: Settings) -> None:
    """Per-process memory of sure refusals and availability pages (guahao/release/gate.py)."""
    from guahao.release.availability import AvailabilityCache, Renderings
    from guahao.release.fastlane import FastLane
    from guahao.release.gate import Gate

    app.state.availability = AvailabilityCache()
    app.state.renderings = Renderings()
    app.state.gate = Gate(settings.redis_url, settings.redis_prefix)
    app.state.gate.attach(app.state.db.engine)
    app.state.gate.on_change(app.state.availability.invalidate)
    app.state.gate.on_write(app.state.availability.clear)
    app.add_middleware(FastLane, state=app.state)
    if settings.inline_answers:
        from guahao.release.inline import Inline

        app.state.inline = Inline(app.state)  # used by `guahao serve`'s protocol (guahao/serving.py)


def _bookings_on_loop(settings: Settings, db: Database):
    """PostgreSQL's booking path on the event loop (guahao/booking/pg_async.py), or None."""
    if not settings.booking_on_loop or db.pg_conninfo is None:
        return None
    from guahao.booking.pg_async import Bookings

    bookings = Bookings(db.pg_conninfo, settings.db_connections, db.pg_connect_args)
    if settings.booking_thread:
        from guahao.booking.dbthread import BookingsInThread

        return BookingsInThread(bookings, settings.booking_batch)
    return bookings


async def _warm(app: FastAPI) -> None:
    await app.state.limiter.warm()
    gate = getattr(app.state, "gate", None)
    if gate is not None:
        await gate.warm()


@asynccontextmanager
async def _lifespan(app: FastAPI):
    bookings = app.state.pg_bookings
    if bookings is not None:
        await bookings.open()  # connects in the background: ready before the release instant
    warming = asyncio.ensure_future(_warm(app))  # the server's start does not wait for Redis
    gate = getattr(app.state, "gate", None)
    if gate is not None:
        # Subscribed before the release instant: started at the first booking attempt, a worker forgot what
        # it had learned at T when its subscription came up, and missed the other workers' news until then.
        gate.start()
    try:
        yield
    finally:
        warming.cancel()
        if gate is not None:
            gate.stop()
        if bookings is not None:
            await bookings.close()


def create_app(settings: Settings | None = None, db: Database | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    logmask.install()  # ID numbers and phones never reach a log line (A6)
    # `enforce` checks every API route's declared audience (guahao/security/access.py) before the route runs.
    app = FastAPI(title="guahao 预约挂号", version="0.1.0", dependencies=[Depends(enforce)], lifespan=_lifespan,
                  **_NO_TELEMETRY,
                  description="Open-source hospital appointment registration platform. Errors are "
                              '`{"error": {"code", "message"}}` with stable codes and Chinese messages.')
    app.state.settings = settings
    app.state.db = db or make_database(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
    app.state.clock = clock or clock_from_setting(settings.now, settings.now_anchor)
    app.state.pg_bookings = _bookings_on_loop(settings, app.state.db)
    app.state.limiter = RateLimiter(settings.redis_url, settings.rate_limit_enabled)
    _release_gate(app, settings)
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BrowserGuard)  # cross-site form posts refused; nosniff / no framing headers
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for r in routers():
        app.include_router(r, responses=ERROR_RESPONSES)  # documents the error shape in OpenAPI

    openapi_fixes.install(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        return {"status": "ok", "now": app.state.clock.now().isoformat()}

    return app

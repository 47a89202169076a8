"""The `guahao` command: database, demo data, server."""

import sys
from typing import Annotated

import typer

app = typer.Typer(help="guahao 预约挂号 platform", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database migrations", no_args_is_help=True)
app.add_typer(db_app, name="db")

DEMO_PHONE = "13800138000"
DEMO_PASSWORD = "demo1234"
DEMO_NAME = "张三"
DEMO_ID = "11010519491231002X"

def _settings():
    from guahao.config import get_settings

    try:
        return get_settings()
    except Exception as e:  # pydantic's validation message is the clearest thing to show
        typer.echo(f"配置错误 / settings error: {e}", err=True)
        raise typer.Exit(2) from None

def _database():
    from guahao.db import make_database

    s = _settings()
    return make_database(s.database_url)

@db_app.command("upgrade")
def db_upgrade(revision: str = "head"):
    """Apply migrations up to REVISION (default: head)."""
    from guahao.migrate import upgrade

    db = _database()
    upgrade(db.engine, revision)
    typer.echo(f"database at {revision}: {db.engine.url.render_as_string(hide_password=True)}")

@app.command()
def demo():
    """Load the demo catalog (49 Beijing hospitals, generated departments/doctors/sessions) and a demo patient."""
    from guahao.accounts import repository as arepo
    from guahao.accounts import service as accounts
    from guahao.catalog.demo import generate_sessions, load_catalog
    from guahao.clock import clock_from_setting, local_today

    db = _database()
    clock = clock_from_setting(_settings().now)
    with db.transaction() as s:
        created = load_catalog(s)
    with db.transaction() as s:
        sessions = generate_sessions(s, local_today(clock), now=clock.now())
    with db.transaction() as s:
        if arepo.account_by_phone(s, DEMO_PHONE) is None:
            accounts.register(s, clock.now(), DEMO_PHONE, DEMO_PASSWORD, DEMO_NAME, DEMO_ID)
    with db.transaction() as s:
        staff_logins = _demo_staff(s, clock.now())
    typer.echo(f"demo: {created} hospitals created, {sessions} clinic sessions added (today {local_today(clock)})")
    typer.echo(f"demo patient login: {DEMO_PHONE} / {DEMO_PASSWORD}")
    for role, username, hospital in staff_logins:
        typer.echo(f"demo staff login ({role}{'，' + hospital if hospital else ''}): {username} / {DEMO_STAFF_PASSWORD}")

DEMO_STAFF_PASSWORD = "staff1234"

def _demo_staff(s, now) -> list[tuple[str, str, str]]:
    """A platform admin, and an admin, a clerk and a doctor for each of the first two hospitals."""
    from sqlalchemy import select

    from guahao.catalog.models import Doctor, Hospital
    from guahao.staff.models import StaffUser
    from guahao.staff.rules import ROLE_LABELS, Role
    from guahao.staff.service import create_staff

    wanted = [(Role.PLATFORM_ADMIN, "admin", None, None)]
    for n, h in enumerate(s.scalars(select(Hospital).order_by(Hospital.id).limit(2)), start=1):
        doc = s.scalar(select(Doctor).where(Doctor.hospital_id == h.id).order_by(Doctor.id))
        wanted += [(Role.HOSPITAL_ADMIN, f"h{n}-admin", h, None), (Role.CLERK, f"h{n}-clerk", h, None),
                   (Role.DOCTOR, f"h{n}-doctor", h, doc)]
    out = []
    for role, username, h, doc in wanted:
        if s.scalar(select(StaffUser.id).where(StaffUser.username == username)) is None:
            name = f"{doc.name}医生" if doc else f"{ROLE_LABELS[role]}{username}"
            create_staff(s, now, username, DEMO_STAFF_PASSWORD, role, name,
                         h.id if h else None, doc.id if doc else None)
        label = ROLE_LABELS[role] + (f"，{doc.name}" if doc else "")
        out.append((label, username, h.name if h else ""))
    return out


billing_app = typer.Typer(help="Payments and refunds", no_args_is_help=True)
ledger_app = typer.Typer(help="The money ledger", no_args_is_help=True)
app.add_typer(billing_app, name="billing")
app.add_typer(ledger_app, name="ledger")


def _clock_now():
    from guahao.clock import clock_from_setting

    return clock_from_setting(_settings().now).now()


@billing_app.command("expire")
def billing_expire():
    """M1: expire prepaid bookings left unpaid 15 min (frees their slots) and close stale orders."""
    from guahao.billing.service import expire_unpaid

    db = _database()
    with db.transaction() as s:
        n = expire_unpaid(s, _clock_now())
    typer.echo(f"expired {n} unpaid booking(s)")


@billing_app.command("retry-refunds")
def billing_retry_refunds():
    """Retry failed refunds with the provider (failed → requested → succeeded/failed)."""
    from guahao.billing.service import retry_refunds

    db = _database()
    with db.transaction() as s:
        ok, bad = retry_refunds(s, _clock_now())
    typer.echo(f"refunds retried: {ok} succeeded, {bad} still failing")


@billing_app.command("reconcile")
def billing_reconcile():
    """Credit orders the provider reports paid whose callback never arrived."""
    from guahao.billing.service import reconcile

    db = _database()
    with db.transaction() as s:
        n = reconcile(s, _clock_now())
    typer.echo(f"reconciled {n} order(s)")


@billing_app.command("settings")
def billing_settings(
    hospital_id: int, prepay: Annotated[bool, typer.Option("--prepay/--no-prepay")] = True,
    cancel_minutes_before: Annotated[int | None, typer.Option(
        help="online cancel allowed until N minutes before the booked period (default: 15:00 the day before)")] = None,
):
    """Require (or stop requiring) online prepayment at a hospital (M1); refund tiers stay as set."""
    from guahao.catalog.models import Hospital

    db = _database()
    with db.transaction() as s:
        h = s.get(Hospital, hospital_id)
        if h is None:
            typer.echo(f"no hospital {hospital_id}", err=True)
            raise typer.Exit(1)
        h.requires_prepayment = prepay
        if cancel_minutes_before is not None:
            h.cancel_minutes_before = cancel_minutes_before
        deadline = (f"{h.cancel_minutes_before} min before the period" if h.cancel_minutes_before is not None
                    else f"{h.cancel_deadline_time:%H:%M} the day before")
        typer.echo(f"{h.name}: prepayment {'required' if prepay else 'not required'}; online cancel until {deadline}")


@billing_app.command("seed-prices")
def billing_seed_prices():
    """Give every hospital without one a small demo price table (exams, drugs, 特需 service)."""
    from guahao.billing.demo import seed_price_tables

    db = _database()
    with db.transaction() as s:
        n = seed_price_tables(s)
    typer.echo(f"price tables added for {n} hospital(s)")


@ledger_app.command("check")
def ledger_check():
    """Every fen paid = refunded + retained, per bill, booking, payment and in total; exit 1 if not."""
    from guahao.billing.ledger import check
    from guahao.web.templating import yuan

    db = _database()
    with db.reading() as s:
        rep = check(s)
    typer.echo(f"payments {rep.payments}, bookings {rep.bookings}: paid {yuan(rep.paid)} = refunded "
               f"{yuan(rep.refunded)} (pending {yuan(rep.refunds_pending)}) + retained {yuan(rep.retained)}")
    for p in rep.problems:
        typer.echo(f"PROBLEM: {p}", err=True)
    if not rep.ok:
        raise typer.Exit(1)
    typer.echo("ledger balanced")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="server processes (production: 2 per core)")] = 1,
    with_worker: Annotated[bool, typer.Option(help="also run the background jobs in this process")] = False,
    access_log: Annotated[bool, typer.Option(help="one log line per request (costs CPU at the release burst)")] = True,
    reuse_port: Annotated[bool, typer.Option(
        help="with several workers, each listens on a socket of its own (SO_REUSEPORT) so that connections "
             "spread evenly; --no-reuse-port: one shared socket, uvicorn's own way")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
    backlog: Annotated[int, typer.Option(help="connections waiting to be accepted, per listening socket")] = 2048,
):
    """Serve the platform (API at /api/v1, docs at /docs)."""
    import uvicorn
    from uvicorn.config import LOG_LEVELS

    from guahao import serving

    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    _settings()
    if with_worker:
        from guahao.clock import clock_from_setting
        from guahao.worker.runner import start_background

        start_background(_database(), clock_from_setting(_settings().now))
        typer.echo("background worker running in-process (docs/worker.md)")
    typer.echo(f"guahao serving at http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    options = dict(host=host, port=port, workers=workers, log_level=log_level, proxy_headers=True,
                   access_log=access_log, backlog=backlog, http=serving.http_protocol())
    if workers > 1 and reuse_port and serving.can_reuse_port():
        try:
            serving.run(uvicorn.Config("guahao.asgi:app", **options))
        except OSError as e:
            typer.echo(f"无法监听 / cannot listen on {host}:{port}: {e.strerror or e}", err=True)
            raise typer.Exit(1)
    else:
        uvicorn.run("guahao.asgi:app", **options)


from guahao.worker.cli import register as _register_clockwork  # noqa: E402

_register_clockwork(app)

def main() -> int:
    """Entry point: known failures become one clear line and a non-zero exit, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from guahao.errors import DomainError

    try:
        app()
    except OperationalError as e:
        first = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        typer.echo(f"数据库连接失败 / database unavailable: {first}", err=True)
        return 3
    except DomainError as e:
        typer.echo(f"{e.code}: {e.message}", err=True)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())

"""CLI for the clockwork: worker, release settings, templates, calendar, 停诊, outbox, bans.

Staff actions from the CLI are audited with actor `cli:<user>` (the operator's login on the machine)."""

import getpass
import json
from datetime import date, time
from typing import Annotated, Optional

import typer

release_app = typer.Typer(help="Per-hospital release/cancel/check-in/reminder settings (R1, R2, X1, V1, S1)",
                          no_args_is_help=True)
schedule_app = typer.Typer(help="Weekly templates, session generation, 停诊 (C2, C3)", no_args_is_help=True)
calendar_app = typer.Typer(help="Working-day calendar and admin overrides (C3)", no_args_is_help=True)
outbox_app = typer.Typer(help="Notification outbox (S1)", no_args_is_help=True)
bans_app = typer.Typer(help="No-show bans (N2)", no_args_is_help=True)


def _env():
    from guahao.cli import _database, _settings
    from guahao.clock import clock_from_setting

    return _database(), clock_from_setting(_settings().now)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:50]
    except Exception:  # no login name in some containers
        return "cli"


def _fail(e) -> None:
    typer.echo(f"错误 {e.code}: {e.message}", err=True)
    raise typer.Exit(1)


def _hospital(s, hospital_id: int):
    from guahao.catalog.models import Hospital
    from guahao.errors import DomainError

    h = s.get(Hospital, hospital_id)
    if h is None:
        raise DomainError("NOT_FOUND", "未找到该医院")
    return h


def worker(once: Annotated[bool, typer.Option(help="run every job once and exit")] = False):
    """Run the background jobs: no-show sweep and bans, reminders, waitlist fill, unpaid expiry, messages."""
    import logging

    from guahao.worker.jobs import run_all
    from guahao.worker.runner import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    db, clock = _env()
    if once:
        typer.echo(json.dumps(run_all(db, clock.now), ensure_ascii=False))
        return
    typer.echo(f"guahao worker started (clock now {clock.now().isoformat()})")
    run_forever(db, clock)


@release_app.command("show")
def release_show(hospital_id: int):
    from guahao.release import service

    db, _ = _env()
    with db.reading() as s:
        from guahao.errors import DomainError
        try:
            v = service.of(_hospital(s, hospital_id))
        except DomainError as e:
            _fail(e)
    for k, val in v.__dict__.items():
        typer.echo(f"{k} = {val}")


def _time(v: Optional[str]) -> Optional[time]:
    return None if v is None else time.fromisoformat(v)


@release_app.command("set")
def release_set(hospital_id: int, release_time: Optional[str] = None, window_days: Optional[int] = None,
                same_day_booking: Optional[bool] = None, cancel_deadline_time: Optional[str] = None,
                cancel_minutes_before: Optional[int] = None,
                cancel_by_time: Annotated[bool, typer.Option(help="clear cancel_minutes_before")] = False,
                checkin_lead_minutes: Optional[int] = None, reminder_time: Optional[str] = None):
    """Change settings; unreleased sessions get their new release instant."""
    from guahao.errors import DomainError
    from guahao.release import service

    changes = {k: v for k, v in dict(
        release_time=_time(release_time), window_days=window_days, same_day_booking=same_day_booking,
        cancel_deadline_time=_time(cancel_deadline_time), cancel_minutes_before=cancel_minutes_before,
        checkin_lead_minutes=checkin_lead_minutes, reminder_time=_time(reminder_time)).items() if v is not None}
    if cancel_by_time:
        changes["cancel_minutes_before"] = None
    db, clock = _env()
    try:
        with db.transaction() as s:
            v, moved = service.update_settings(s, clock.now(), _hospital(s, hospital_id), changes, _actor())
    except DomainError as e:
        _fail(e)
    typer.echo(f"saved; {moved} unreleased sessions got a new release time")
    for k, val in v.__dict__.items():
        typer.echo(f"{k} = {val}")


@schedule_app.command("template")
def template_set(doctor_id: int, weekday: int, period: str, number_type: str, capacity: int, fee: int):
    """Set one cell of a doctor's weekly pattern (weekday 0 = Monday; period AM|PM; fee in fen)."""
    from guahao.catalog.models import Doctor
    from guahao.errors import DomainError
    from guahao.schedule import planning

    db, clock = _env()
    try:
        with db.transaction() as s:
            doc = s.get(Doctor, doctor_id)
            if doc is None:
                raise DomainError("NOT_FOUND", "未找到该医生")
            t = planning.set_template(s, clock.now(), doc, weekday, period, number_type, capacity, fee)
            from guahao.audit import service as audit
            audit.record(s, clock.now(), "staff", _actor(), "template.set", "schedule_template", t.id,
                         dict(weekday=weekday, period=period, number_type=number_type, capacity=capacity, fee=fee),
                         hospital_id=doc.hospital_id)
    except DomainError as e:
        _fail(e)
    typer.echo(f"template {t.id}: doctor {doctor_id} weekday {weekday} {period} {number_type} ×{capacity} {fee}分")


@schedule_app.command("templates")
def templates_list(hospital_id: int, doctor_id: Optional[int] = None):
    from guahao.schedule import planning
    from guahao.schedule.rules import WEEKDAY_LABELS

    db, _ = _env()
    with db.reading() as s:
        for t in planning.templates_of(s, hospital_id, doctor_id):
            typer.echo(f"{t.id}\tdoctor {t.doctor_id}\t{WEEKDAY_LABELS[t.weekday]}\t{t.period}\t{t.number_type}"
                       f"\t×{t.capacity}\t{t.fee}分")


@schedule_app.command("generate")
def generate(hospital_id: int, start: Optional[str] = None, end: Optional[str] = None):
    """Generate sessions and slots from the templates (default: tomorrow … end of the booking window)."""
    from guahao.errors import DomainError
    from guahao.schedule import planning

    db, clock = _env()
    try:
        with db.transaction() as s:
            r = planning.generate(s, clock.now(), _hospital(s, hospital_id),
                                  date.fromisoformat(start) if start else None,
                                  date.fromisoformat(end) if end else None)
    except DomainError as e:
        _fail(e)
    for w in r.warnings:
        typer.echo(f"警告 / warning: {w}", err=True)
    typer.echo(f"{r.sessions} sessions, {r.slots} slots created ({r.skipped_existing} existed); "
               f"holidays skipped: {', '.join(map(str, r.holidays)) or '-'}; "
               f"make-up workdays: {', '.join(map(str, r.makeup_days)) or '-'}")


@schedule_app.command("stop")
def stop(session_id: int, reason: Annotated[str, typer.Option(help="shown to patients")] = "医生停诊"):
    """停诊: cancel every booking of the session (status stopped), notify the patients, refund hook."""
    from guahao.errors import DomainError
    from guahao.schedule import planning
    from guahao.schedule.models import ClinicSession

    db, clock = _env()
    try:
        with db.transaction() as s:
            cs = s.get(ClinicSession, session_id)
            if cs is None:
                raise DomainError("NOT_FOUND", "未找到该出诊")
            ids = planning.stop_session(s, clock.now(), cs, _actor(), reason)
    except DomainError as e:
        _fail(e)
    typer.echo(f"session {session_id} stopped; {len(ids)} bookings cancelled and notified")


@calendar_app.command("show")
def calendar_show(start: str, end: Optional[str] = None, hospital_id: Optional[int] = None):
    from guahao.schedule import planning

    d0 = date.fromisoformat(start)
    d1 = date.fromisoformat(end) if end else d0
    db, _ = _env()
    with db.reading() as s:
        days = planning.calendar_days(s, d0, d1, hospital_id)
    for w in dict.fromkeys(d.warning for d in days if d.warning):
        typer.echo(f"警告 / warning: {w}", err=True)
    for d in days:
        typer.echo(f"{d.day}\t{d.kind}\t{d.source}\t{d.name or ''}")


@calendar_app.command("set")
def calendar_set(day: str, workday: Annotated[bool, typer.Option("--workday/--holiday")],
                 hospital_id: Optional[int] = None, as_weekday: Optional[int] = None, note: str = ""):
    """Declare a date a workday (调休上班) or a holiday/closure; overrides every calendar package."""
    from guahao.errors import DomainError
    from guahao.schedule import planning

    db, clock = _env()
    try:
        with db.transaction() as s:
            planning.set_override(s, clock.now(), _actor(), date.fromisoformat(day), workday, hospital_id,
                                  as_weekday, note)
            from guahao.audit import service as audit
            audit.record(s, clock.now(), "staff", _actor(), "calendar.override", "calendar_day", day,
                         dict(is_workday=workday, hospital_id=hospital_id, note=note), hospital_id=hospital_id)
    except DomainError as e:
        _fail(e)
    typer.echo(f"{day}: {'workday' if workday else 'holiday'} ({'hospital ' + str(hospital_id) if hospital_id else 'platform'})")


@outbox_app.command("list")
def outbox_list(limit: int = 20, kind: Optional[str] = None, hospital_id: Optional[int] = None,
                show_codes: Annotated[bool, typer.Option(help="show SMS code digits (development only)")] = False):
    from guahao.clock import local
    from guahao.notifications import service

    db, _ = _env()
    with db.reading() as s:
        for n in service.outbox(s, hospital_id, kind, limit):
            hide = n.kind == "sms_code" and not show_codes
            body = "（验证码短信，内容不显示）" if hide else n.body
            typer.echo(f"{n.id}\t{local(n.created_at):%Y-%m-%d %H:%M}\t{n.kind}\t{n.phone_masked}\t{n.status}\t{body}")


@schedule_app.command("waitlist")
def waitlist_show(session_id: int):
    """A session's waitlist in order (names and phones masked)."""
    from guahao.accounts.rules import mask_name
    from guahao.waitlist.service import session_queue

    db, _ = _env()
    with db.reading() as s:
        place = 0
        for e, name, phone in session_queue(s, session_id):
            place += e.status == "waiting"
            typer.echo(f"{e.id}\t{place if e.status == 'waiting' else '-'}\t{e.status}\t{mask_name(name)}\t{phone}"
                       f"\t{e.last_skip_reason or ''}")


@bans_app.command("list")
def bans_list():
    from guahao.attendance import service
    from guahao.clock import local

    db, clock = _env()
    with db.reading() as s:
        for b, masked in service.active_bans(s, local(clock.now()).date()):
            typer.echo(f"{b.id}\t{masked}\t{b.starts_on} → {b.ends_on}\t{b.reason}")


@bans_app.command("lift")
def bans_lift(ban_id: int, reason: Annotated[str, typer.Option(help="why (audited)")]):
    """Lift a ban early (N2: logged in the audit log)."""
    from guahao.attendance import service
    from guahao.errors import DomainError

    db, clock = _env()
    try:
        with db.transaction() as s:
            service.lift_ban(s, clock.now(), ban_id, _actor(), reason)
    except DomainError as e:
        _fail(e)
    typer.echo(f"ban {ban_id} lifted")


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(release_app, name="release")
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(calendar_app, name="calendar")
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(bans_app, name="bans")


__all__ = ["register"]

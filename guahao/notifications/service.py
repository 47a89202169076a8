"""Writing messages to the outbox and delivering them (S1). Never commits.

Every message has a dedupe key (e.g. `reminder:42`): the insert skips a key that exists, so jobs may run
twice and two workers may race without a patient getting a message twice."""

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from guahao.accounts.models import Patient
from guahao.accounts.rules import mask_phone
from guahao.booking.models import Booking
from guahao.booking.repository import booking_view_query
from guahao.notifications import rules
from guahao.notifications.models import Notification
from guahao.notifications.senders import OutboxSender, Sender, SendError

N = Notification.__table__


def insert_ignoring(s: Session, table, values: dict, key: str) -> bool:
    """INSERT … ON CONFLICT (key) DO NOTHING on both databases; True when a row was written."""
    ins = pg_insert(table) if s.bind.dialect.name == "postgresql" else sqlite_insert(table)
    # RETURNING, not rowcount: psycopg reports no reliable rowcount for ON CONFLICT DO NOTHING.
    stmt = ins.values(**values).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
    return s.execute(stmt).first() is not None


def enqueue(s: Session, now: datetime, key: str, kind: str, phone: str, body: str, account_id: int | None = None,
            booking_id: int | None = None, hospital_id: int | None = None) -> bool:
    return insert_ignoring(s, N, dict(
        dedupe_key=key, kind=kind, account_id=account_id, booking_id=booking_id, hospital_id=hospital_id,
        phone=phone, phone_masked=mask_phone(phone), body=body, status="pending", attempts=0,
        created_at=now), "dedupe_key")


def facts(s: Session, booking_id: int):
    """(booking row, BookingFacts, patient phone) for a booking."""
    row = s.execute(booking_view_query().add_columns(Patient.phone.label("patient_phone"))
                    .where(Booking.id == booking_id)).one()
    b = row.Booking
    f = rules.BookingFacts(
        patient_name=row.patient_name, hospital=row.hospital_name, department=row.department_name,
        doctor=row.doctor_name, visit_date=b.visit_date, period=b.period, period_start=b.period_start,
        period_end=b.period_end, seq=b.seq, serial_number=b.serial_number,
        check_in_place=row.location or f"{row.department_name}分诊台", number_type=b.number_type)
    return row, f, row.patient_phone


def _booking_message(s: Session, now: datetime, booking_id: int, kind: str, text_of) -> bool:
    row, f, phone = facts(s, booking_id)
    b = row.Booking
    return enqueue(s, now, f"{kind}:{booking_id}", kind, phone, text_of(f), b.account_id, b.id, b.hospital_id)


def booking_confirmed(s: Session, now: datetime, booking_id: int) -> bool:
    return _booking_message(s, now, booking_id, "booking_confirmed", rules.booking_confirmed)


def booking_cancelled(s: Session, now: datetime, booking_id: int) -> bool:
    return _booking_message(s, now, booking_id, "booking_cancelled", rules.booking_cancelled)


def session_stopped(s: Session, now: datetime, booking_id: int, reason: str) -> bool:
    return _booking_message(s, now, booking_id, "session_stopped", lambda f: rules.session_stopped(f, reason))


def waitlist_filled(s: Session, now: datetime, booking_id: int) -> bool:
    return _booking_message(s, now, booking_id, "waitlist_filled", rules.waitlist_filled)


def reminder(s: Session, now: datetime, booking_id: int, lead_minutes: int) -> bool:
    return _booking_message(s, now, booking_id, "reminder", lambda f: rules.reminder(f, lead_minutes))


def _without(kind: str):
    return ~exists().where(and_(N.c.booking_id == Booking.id, N.c.kind == kind))


def booking_notices(s: Session, now: datetime, lookback: timedelta = timedelta(days=2), limit: int = 500) -> int:
    """Confirmation for each new booking and a notice for each patient cancellation not yet told (S1).
    Run by the worker moments after the fact, so the booking burst pays for no message writes."""
    since = now - lookback
    n = 0
    confirmed = s.scalars(select(Booking.id).where(
        Booking.created_at >= since, Booking.status.in_(("booked", "checked_in")),
        _without("booking_confirmed"), _without("waitlist_filled")).order_by(Booking.id).limit(limit))
    for bid in list(confirmed):
        n += booking_confirmed(s, now, bid)
    cancelled = s.scalars(select(Booking.id).where(
        Booking.cancelled_at >= since, Booking.status == "cancelled", _without("booking_cancelled"))
        .order_by(Booking.id).limit(limit))
    for bid in list(cancelled):
        n += booking_cancelled(s, now, bid)
    return n


def claim_pending(s: Session, limit: int = 100) -> list[Notification]:
    """Pending messages for this worker. PostgreSQL: rows another worker holds are skipped (SKIP LOCKED);
    SQLite: the writer transaction (BEGIN IMMEDIATE) already excludes the other worker."""
    q = select(Notification).where(Notification.status == "pending").order_by(Notification.id).limit(limit)
    if s.bind.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return list(s.scalars(q))


def dispatch(s: Session, now: datetime, sender: Sender | None = None, limit: int = 100,
             max_attempts: int = 5) -> int:
    sender = sender or OutboxSender()
    sent = 0
    for n in claim_pending(s, limit):
        n.attempts += 1
        try:
            sender.send(n.phone, n.body, str(n.id))
        except SendError as e:
            n.error = str(e)[:200]
            if n.attempts >= max_attempts:
                n.status = "failed"
            continue
        n.status, n.sent_at, n.sender, n.error = "sent", now, sender.name, None
        if n.kind == "sms_code" and sender.name != "outbox":
            # Delivered to the phone: the digits need not stay in our database.
            n.body = "（验证码已发送）"
        sent += 1
    s.flush()
    return sent


def outbox(s: Session, hospital_id: int | None = None, kind: str | None = None,
           limit: int = 100, offset: int = 0, status: str | None = None) -> list[Notification]:
    q = select(Notification)
    if status:
        q = q.where(Notification.status == status)
    if hospital_id is not None:
        q = q.where(Notification.hospital_id == hospital_id)
    if kind:
        q = q.where(Notification.kind == kind)
    return list(s.scalars(q.order_by(Notification.id.desc()).limit(limit).offset(offset)))


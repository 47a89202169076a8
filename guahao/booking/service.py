"""Book, cancel and reschedule (RULES R1–R3, L1–L6, X1, X3). Never commits: the caller owns the transaction."""

import secrets
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from types import SimpleNamespace

from sqlalchemy.orm import Session

from guahao.booking import repository as repo
from guahao.booking import rules
from guahao.booking.models import Booking
from guahao.clock import local
from guahao.errors import DomainError
from guahao.release.rules import check_bookable


def new_serial(visit_date) -> str:
    return f"{visit_date:%y%m%d}{secrets.randbelow(10**10):010d}"


def book(
    s: Session, now: datetime, account_id: int, slot_id: int, patient_id: int, insurance_type: str,
    policy: rules.LimitPolicy = rules.LimitPolicy(), rescheduled_from_id: int | None = None,
) -> int:
    """Book `slot_id` for the account's patient; returns the booking id or raises a DomainError."""
    return book_with_view(s, now, account_id, slot_id, patient_id, insurance_type, policy,
                          rescheduled_from_id).Booking.id


def book_with_view(
    s: Session, now: datetime, account_id: int, slot_id: int, patient_id: int, insurance_type: str,
    policy: rules.LimitPolicy = rules.LimitPolicy(), rescheduled_from_id: int | None = None,
    on_person: Callable[[int], None] | None = None,
):
    """`book`, answering with the new booking as `get_view` would show it (see `booking_steps`).

    `on_person(person_id)` runs once the person behind the patient is known, before any rule is checked
    (the per-person rate limit is counted there)."""
    steps = booking_steps(now, account_id, slot_id, patient_id, insurance_type, policy, rescheduled_from_id)
    return run_steps(steps, repo.BookingStore(s, on_person))


def booking_steps(
    now: datetime, account_id: int, slot_id: int, patient_id: int, insurance_type: str,
    policy: rules.LimitPolicy = rules.LimitPolicy(), rescheduled_from_id: int | None = None,
) -> Generator[tuple, object, SimpleNamespace]:
    """The booking transaction as steps: it yields what it asks of the database — `(operation, *args)`,
    carried out by a store's method of that name — and returns the new booking as `get_view` would show
    it, built from what it read and wrote (no query reads back what was just written). One sequence of
    rules for both stores: `repository.BookingStore` (SQLAlchemy, any database, in a thread) and
    `pg_async.BookingStore` (psycopg on the event loop, the release-time path on PostgreSQL)."""
    slot = yield ("slot_for_booking", slot_id, account_id, patient_id)
    if slot is None:
        raise DomainError("NOT_FOUND", "未找到该号源")
    if slot.patient_pk is None:
        raise DomainError("NOT_FOUND", "未找到该就诊人")
    yield ("person_known", slot.person_id)
    if slot.status != "open":
        raise DomainError("SESSION_STOPPED")
    if not slot.online_bookable:
        raise DomainError("NOT_BOOKABLE_ONLINE")
    check_bookable(now, slot.visit_date, slot.starts_at, slot.release_at, slot.same_day_booking)
    if slot.booked >= slot.capacity:
        raise DomainError("SESSION_FULL")
    if slot.held:
        raise DomainError("SLOT_TAKEN")
    if slot.requires_visit_card and not (yield ("has_visit_card", slot.patient_pk, slot.hospital_id)):
        raise DomainError("VISIT_CARD_REQUIRED")

    today = local(now).date()
    # The person's row lock (their bookings one at a time), the end of any ban, and then, under the lock,
    # their active bookings near the visit date: one step, so a store can ask all of it in one round trip.
    banned_until, near = yield ("lock_person", slot.person_id, today, slot.visit_date, rules.limit_span(policy))
    rules.check_not_banned(today, banned_until)
    rules.check_limits([rules.Visit(*r) for r in near],
                       rules.Visit(slot.hospital_id, slot.department_id, slot.visit_date), policy)

    values = dict(
        serial_number=new_serial(slot.visit_date), account_id=account_id, patient_id=slot.patient_pk,
        person_id=slot.person_id, slot_id=slot.slot_id, session_id=slot.session_id,
        hospital_id=slot.hospital_id, department_id=slot.department_id, doctor_id=slot.doctor_id,
        visit_date=slot.visit_date, period=slot.period, period_start=slot.slot_start,
        period_end=slot.slot_end, seq=slot.seq, number_type=slot.number_type, fee=slot.fee,
        insurance_type=insurance_type, created_at=now,
        # M1: a prepaid booking holds its slot unpaid; billing.service.expire_unpaid frees it after 15 min.
        status="pending_payment" if slot.requires_prepayment else "booked",
        rescheduled_from_id=rescheduled_from_id,
    )
    # The booking row and the session's place, all or nothing: a store answers a unique index's refusal as
    # SLOT_TAKEN / DUPLICATE_DEPARTMENT_DAY, and no place left as places_left None. The session's counter
    # row is every booking's meeting point: a store takes it last, so that its row lock is held only until
    # the commit (pg_async.BookingStore commits in the same round trip).
    booking_id, places_left = yield ("book_place", values)
    if places_left is None:
        raise DomainError("SESSION_FULL")
    # Stored as UTC: the answer shows the instant as a later read of the booking would.
    booking = SimpleNamespace(**values, id=booking_id, cancelled_at=None, cancel_reason=None)
    booking.created_at = now.astimezone(timezone.utc)
    return SimpleNamespace(Booking=booking, places_left=places_left, **{k: getattr(slot, k) for k in VIEW_NAMES})


def run_steps(steps: Generator, store):
    """Carry out `steps` with a store whose methods answer them (blocking)."""
    answer = None
    while True:
        try:
            operation, *args = steps.send(answer)
        except StopIteration as done:
            return done.value
        answer = getattr(store, operation)(*args)


# What `repo.booking_view_query` adds to a booking, and `repo.slot_for_booking` reads too.
VIEW_NAMES = ("hospital_name", "department_name", "location", "doctor_name", "doctor_title", "patient_name",
              "cancel_deadline_time", "cancel_minutes_before")


def get_view(s: Session, account_id: int, booking_id: int):
    row = repo.account_booking(s, account_id, booking_id)
    if row is None:
        raise DomainError("NOT_FOUND", "未找到该预约")
    return row


def deadline_of(row) -> datetime:
    b = row.Booking
    return rules.cancel_deadline(
        b.visit_date, b.period_start,
        rules.CancelPolicy(row.cancel_deadline_time, row.cancel_minutes_before))


def _release(s: Session, now: datetime, row, new_status: str, reason: str) -> None:
    b: Booking = row.Booking
    if b.status not in ("booked", "pending_payment"):
        raise DomainError("NOT_CANCELLABLE", f"该预约状态为“{STATUS_LABELS.get(b.status, b.status)}”，不能取消")
    rules.check_cancellable(now, deadline_of(row))
    # Conditional: of two concurrent cancels only one frees the place.
    if not repo.set_status_if(s, b.id, ("booked", "pending_payment"),
                              dict(status=new_status, cancelled_at=now, cancel_reason=reason)):
        raise DomainError("NOT_CANCELLABLE")
    repo.free_place(s, b.session_id)


def cancel(s: Session, now: datetime, account_id: int, booking_id: int, reason: str = "patient") -> None:
    row = get_view(s, account_id, booking_id)
    _release(s, now, row, "cancelled", reason)
    _give_to_waitlist(s, now, row.Booking.session_id)


# --- waitlist hand-off (W1, clockwork) ---------------------------------------------------------------------
def _give_to_waitlist(s: Session, now: datetime, session_id: int) -> None:
    """A freed place goes to the first eligible waiting person in this same transaction."""
    from guahao.waitlist.service import fill_session

    fill_session(s, now, session_id)
# --- end waitlist hand-off -------------------------------------------------------------------------------


def reschedule(
    s: Session, now: datetime, account_id: int, booking_id: int, new_slot_id: int,
    policy: rules.LimitPolicy = rules.LimitPolicy(),
) -> int:
    """Move a booking to another slot of the same doctor and number type, all or nothing (X3)."""
    row = get_view(s, account_id, booking_id)
    old: Booking = row.Booking
    target = repo.slot_for_booking(s, new_slot_id)
    if target is None:
        raise DomainError("NOT_FOUND", "未找到该号源")
    if old.doctor_id is None or target.doctor_id != old.doctor_id or target.number_type != old.number_type:
        raise DomainError("RESCHEDULE_MISMATCH")
    if target.slot_id == old.slot_id:
        raise DomainError("RESCHEDULE_MISMATCH", "新号源与原预约相同")
    _release(s, now, row, "rescheduled", "reschedule")
    # Limits are checked with the old booking already gone; any failure rolls both changes back.
    new_id = book(s, now, account_id, new_slot_id, old.patient_id, old.insurance_type, policy,
                  rescheduled_from_id=old.id)
    _give_to_waitlist(s, now, old.session_id)
    return new_id


STATUS_LABELS = {
    "booked": "已预约", "checked_in": "已报到", "completed": "已就诊", "cancelled": "已取消",
    "rescheduled": "已改约", "no_show": "爽约", "stopped": "停诊取消",
    "pending_payment": "待支付", "expired": "超时未支付",
}

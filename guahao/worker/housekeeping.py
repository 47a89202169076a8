"""Expiry of unpaid bookings (M1): the hook for prepayment.

Bookings on this branch carry no payment state. When billing introduces a prepayment status (a booking
that holds its place while the patient pays), this job expires those older than 15 minutes: status
`expired`, place freed, the waitlist served. It is real and tested against rows in that status.
`bookings.status` is VARCHAR(12) on the foundation schema, so "pending_payment" (15 characters) fits only
if billing widens the column; "unpaid" fits as is. Both names are honoured."""

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guahao.booking.models import Booking
from guahao.booking.repository import free_place

PENDING = ("unpaid", "pending_payment")
PAY_WITHIN = timedelta(minutes=15)


def expire_unpaid(s: Session, now: datetime, pay_within: timedelta = PAY_WITHIN) -> int:
    from guahao.waitlist.service import fill_session

    rows = s.execute(select(Booking.id, Booking.session_id).where(
        Booking.status.in_(PENDING), Booking.created_at <= now - pay_within).order_by(Booking.id)).all()
    n = 0
    for bid, session_id in rows:
        res = s.execute(update(Booking).where(Booking.id == bid, Booking.status.in_(PENDING)).values(
            status="expired", cancelled_at=now, cancel_reason="unpaid"))
        if res.rowcount == 1:
            free_place(s, session_id)
            fill_session(s, now, session_id)
            n += 1
    return n

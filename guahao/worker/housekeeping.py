"""Expiry of unpaid bookings (M1) as a worker job: billing expires them and frees their places, then the
waitlist (W1) is served for each freed session in the same transaction."""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.billing.rules import PAYMENT_MINUTES
from guahao.billing.service import expire_unpaid as billing_expire
from guahao.booking.models import Booking


def expire_unpaid(s: Session, now: datetime) -> int:
    from guahao.waitlist.service import fill_session

    due = set(s.scalars(select(Booking.session_id).where(
        Booking.status == "pending_payment", Booking.created_at <= now - timedelta(minutes=PAYMENT_MINUTES))))
    n = billing_expire(s, now)
    for session_id in sorted(due):
        fill_session(s, now, session_id)
    return n

"""The reminder the evening before a visit, at each hospital's reminder time (S1, default 18:00)."""

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from guahao.booking.models import Booking
from guahao.catalog.models import Hospital
from guahao.clock import at_local, local
from guahao.notifications import service
from guahao.notifications.models import Notification

N = Notification.__table__


def due_reminders(s: Session, now: datetime, limit: int = 2000) -> int:
    """Remind every `booked` booking of tomorrow whose hospital's reminder time has come today."""
    today = local(now).date()
    tomorrow = today + timedelta(days=1)
    sent = 0
    for h in s.execute(select(Hospital.id, Hospital.reminder_time, Hospital.checkin_lead_minutes)).all():
        if now < at_local(today, h.reminder_time):
            continue
        ids = list(s.scalars(select(Booking.id).where(
            Booking.hospital_id == h.id, Booking.visit_date == tomorrow, Booking.status == "booked",
            ~exists().where(and_(N.c.booking_id == Booking.id, N.c.kind == "reminder")))
            .order_by(Booking.id).limit(limit)))
        for bid in ids:
            sent += service.reminder(s, now, bid, h.checkin_lead_minutes)
    return sent

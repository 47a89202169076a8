from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guahao.booking.models import Booking
from guahao.db import Base, UTCDateTime

# The no-show sweep and the reminder job look for `booked` bookings by visit date; without this index both
# would scan every booking ever made, every minute.
Index("ix_bookings_status_visit_date", Booking.status, Booking.visit_date)
# The confirmation/cancellation notices job looks at the last two days' bookings and cancellations.
Index("ix_bookings_created_at", Booking.created_at)
Index("ix_bookings_cancelled_at", Booking.cancelled_at)


class BanGrant(Base):
    """Which no-show tier of which calendar year has produced a ban (N2): at most one ban per tier."""

    __tablename__ = "ban_grants"
    __table_args__ = (UniqueConstraint("person_id", "year", "strikes"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    year: Mapped[int] = mapped_column(Integer)
    strikes: Mapped[int] = mapped_column(Integer)
    ban_id: Mapped[int] = mapped_column(ForeignKey("bans.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

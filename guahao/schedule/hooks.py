"""Extension points other feature areas plug into, so schedules need not import money at module level.

When a session stops (C3), every booking gets the full refund of X2 from billing (a paid one is
refunded, an unpaid one has its order voided); further handlers may be appended to
`booking_stopped_handlers` and run inside the stopping transaction."""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

booking_stopped_handlers: list[Callable[[Session, datetime, int], None]] = []


def on_booking_stopped(s: Session, now: datetime, booking_id: int) -> None:
    from guahao.billing.service import refund_stopped_booking

    refund_stopped_booking(s, now, booking_id)
    for handler in booking_stopped_handlers:
        handler(s, now, booking_id)

"""Extension points other feature areas plug into, so schedules need not know about money.

Billing registers a refund handler here: `hooks.booking_stopped_handlers.append(fn)`; `fn(s, now,
booking_id)` runs inside the stopping transaction and must issue the full refund of X2/C3 for a paid
booking (and do nothing for an unpaid one). Until billing exists the list is empty."""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

booking_stopped_handlers: list[Callable[[Session, datetime, int], None]] = []


def on_booking_stopped(s: Session, now: datetime, booking_id: int) -> None:
    for handler in booking_stopped_handlers:
        handler(s, now, booking_id)

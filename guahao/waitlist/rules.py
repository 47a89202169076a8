"""The waitlist (W1), pure."""

from datetime import datetime

from guahao.errors import DomainError


def check_may_join(session_status: str, booked: int, capacity: int, now: datetime, session_start: datetime) -> None:
    """Only a full, open session that has not started takes a waitlist."""
    if session_status != "open":
        raise DomainError("SESSION_STOPPED")
    if now >= session_start:
        raise DomainError("OUT_OF_WINDOW", "该出诊已开始，不能候补")
    if booked < capacity:
        raise DomainError("WAITLIST_NOT_FULL")


def place_in_line(waiting_ids_in_order: list[int], entry_id: int) -> int:
    """1-based position among those still waiting."""
    return waiting_ids_in_order.index(entry_id) + 1

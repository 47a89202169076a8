"""Check-in hours (V1) and queue order (V2), pure."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from guahao.clock import at_local, local
from guahao.errors import DomainError

# Queue keys start at seq × KEY_STEP: wide gaps let a pass slot a patient between two others.
KEY_STEP = 1 << 20
PASS_BEHIND = 3  # 过号: back behind the next 3 waiting patients
DEFAULT_VISIT_MINUTES = 10  # estimate used until the doctor has consultation history
RECENT_VISITS = 20


@dataclass(frozen=True)
class CheckinWindow:
    opens: datetime
    closes: datetime


def checkin_window(visit_date: date, slot_start: time, session_end: time, lead_minutes: int) -> CheckinWindow:
    """Opens `lead_minutes` before the booked period; closes when the session's half-day ends."""
    return CheckinWindow(at_local(visit_date, slot_start) - timedelta(minutes=lead_minutes),
                         at_local(visit_date, session_end))


def check_checkin_time(now: datetime, visit_date: date, window: CheckinWindow) -> None:
    hours = f"{local(window.opens):%H:%M}–{local(window.closes):%H:%M}"
    today = local(now).date()
    if today != visit_date:
        raise DomainError("CHECKIN_WRONG_DAY",
                          f"该预约的就诊日为{visit_date:%Y-%m-%d}，请在就诊当天{hours}报到")
    if now < window.opens:
        raise DomainError("CHECKIN_NOT_OPEN", f"报到时间为{hours}，尚未开始")
    if now >= window.closes:
        raise DomainError("CHECKIN_CLOSED", f"报到时间为{hours}，已结束")


def initial_key(seq: int) -> int:
    return seq * KEY_STEP


def pass_key(waiting_keys: list[int]) -> int | None:
    """The key that puts a passed patient behind the first PASS_BEHIND of `waiting_keys` (sorted).

    None when there is no integer gap left between the two neighbours: the caller renumbers and retries.
    """
    if len(waiting_keys) <= PASS_BEHIND - 1:
        return (waiting_keys[-1] if waiting_keys else 0) + KEY_STEP
    before = waiting_keys[PASS_BEHIND - 1]
    if len(waiting_keys) == PASS_BEHIND:
        return before + KEY_STEP
    after = waiting_keys[PASS_BEHIND]
    if after - before < 2:
        return None
    return (before + after) // 2


def average_minutes(durations_seconds: list[float]) -> float:
    """Mean of recent consultations, each clamped to 1–60 min so a forgotten 'complete' cannot skew it."""
    if not durations_seconds:
        return float(DEFAULT_VISIT_MINUTES)
    clamped = [min(max(d / 60, 1.0), 60.0) for d in durations_seconds]
    return sum(clamped) / len(clamped)


def estimated_wait_minutes(ahead: int, someone_in_room: bool, durations_seconds: list[float]) -> int:
    """People ahead (and half a visit for the one being seen) times the doctor's recent average."""
    per = average_minutes(durations_seconds)
    units = max(ahead, 0) + (0.5 if someone_in_room else 0.0)
    return max(0, round(units * per))

"""Booking bans (N2) as staff see them: list the active ones, lift one early. Never commits."""

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.accounts.models import Ban, Person
from guahao.errors import DomainError


def active_bans(s: Session, today: date, limit: int = 200):
    return s.execute(select(Ban, Person.id_masked).join(Person, Person.id == Ban.person_id).where(
        Ban.lifted_at.is_(None), Ban.ends_on > today).order_by(Ban.starts_on.desc(), Ban.id.desc())
        .limit(limit)).all()


def lift_ban(s: Session, now: datetime, ban_id: int, by: str) -> Ban:
    ban = s.get(Ban, ban_id)
    if ban is None:
        raise DomainError("NOT_FOUND", "未找到该限制记录")
    if ban.lifted_at is not None:
        raise DomainError("VALIDATION_ERROR", "该限制已解除")
    ban.lifted_at = now
    ban.lifted_by = by
    s.flush()
    return ban

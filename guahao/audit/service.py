"""Record staff actions and patient-data changes in the append-only audit log (inside the caller's
transaction, so an action and its record commit or roll back together)."""

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guahao.audit.models import AuditEntry


def record(s: Session, now: datetime, actor_type: str, actor_id, action: str, target_type: str,
           target_id, details: dict | None = None, hospital_id: int | None = None,
           ip: str | None = None) -> None:
    s.execute(insert(AuditEntry).values(
        at=now, actor_type=actor_type, actor_id=str(actor_id), hospital_id=hospital_id, action=action,
        target_type=target_type, target_id=str(target_id), details=_masked(details or {}), ip=ip))


def record_staff(s: Session, now: datetime, staff, action: str, target_type: str, target_id,
                 hospital_id: int | None, details: dict | None = None, ip: str | None = None) -> None:
    """A staff action (check-in, cancel on behalf, unban, stop session, settings, refund). `hospital_id`
    is the hospital of the object acted on, so that hospital's admin sees the entry."""
    record(s, now, "staff", f"{staff.id}:{staff.username}", action, target_type, target_id,
           {"role": str(staff.role), **(details or {})}, hospital_id=hospital_id, ip=ip)


def _masked(value):
    """Defensive: an ID number or phone handed in by mistake is stored masked (A6)."""
    from guahao.security.logmask import mask_text

    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def entries(s: Session, scope: int | None, limit: int = 100, before_id: int | None = None,
            since: datetime | None = None, until: datetime | None = None, **equal) -> list[AuditEntry]:
    """Entries newest first. `scope` (a hospital id) restricts a hospital admin to their hospital."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if scope is not None:
        q = q.where(AuditEntry.hospital_id == scope)
    for column, value in equal.items():
        if value is not None:
            q = q.where(getattr(AuditEntry, column) == value)
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if until is not None:
        q = q.where(AuditEntry.at < until)
    return list(s.scalars(q))

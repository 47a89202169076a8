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
        target_type=target_type, target_id=str(target_id), details=details or {}, ip=ip))


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

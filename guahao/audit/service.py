"""Record staff actions and patient-data changes in the append-only audit log (inside the caller's
transaction, so an action and its record commit or roll back together)."""

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from guahao.audit.models import AuditEntry


def record(s: Session, now: datetime, actor_type: str, actor_id, action: str, target_type: str,
           target_id, details: dict | None = None, hospital_id: int | None = None,
           ip: str | None = None) -> None:
    s.execute(insert(AuditEntry).values(
        at=now, actor_type=actor_type, actor_id=str(actor_id), hospital_id=hospital_id, action=action,
        target_type=target_type, target_id=str(target_id), details=details or {}, ip=ip))

"""The audit log for administrators: a platform admin sees every entry, a hospital admin their hospital's."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from guahao.audit import service
from guahao.clock import TZ
from guahao.deps import CurrentStaff, ReadSession
from guahao.staff.rules import Role, check_role

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
Short = Annotated[str | None, Query(max_length=50)]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor_type: str
    actor_id: str
    hospital_id: int | None
    action: str
    target_type: str
    target_id: str
    details: dict
    ip: str | None


@router.get("/audit", response_model=list[AuditOut])
def audit_log(staff: CurrentStaff, s: ReadSession, action: Short = None, target_type: Short = None,
              target_id: Short = None, actor_type: Short = None, actor_id: Short = None,
              hospital_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
              since: datetime | None = None, until: datetime | None = None,
              before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100):
    """Newest first; page back with `before_id` = the last id you got."""
    check_role(staff.role, (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN))
    # A hospital admin's filter is forced to their own hospital, whatever they ask for.
    scope = None if staff.role == Role.PLATFORM_ADMIN else staff.hospital_id
    since, until = (t.replace(tzinfo=TZ) if t and t.tzinfo is None else t for t in (since, until))
    rows = service.entries(s, scope=scope, hospital_id=hospital_id, action=action, target_type=target_type,
                           target_id=target_id, actor_type=actor_type, actor_id=actor_id, since=since,
                           until=until, before_id=before_id, limit=limit)
    return [AuditOut(id=e.id, at=e.at, actor_type=e.actor_type, actor_id=e.actor_id, hospital_id=e.hospital_id,
                     action=e.action, target_type=e.target_type, target_id=e.target_id, details=e.details or {},
                     ip=e.ip) for e in rows]

"""Staff users and their login. Never commits."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.accounts.security import hash_password, issue_token, verify_password
from guahao.catalog.models import Doctor, Hospital
from guahao.errors import DomainError
from guahao.staff.models import StaffUser
from guahao.staff.rules import Role, check_hospital, check_role

ADMINS = (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN)


@dataclass(frozen=True)
class Staff:
    """Who is acting, as carried in a staff token."""

    id: int
    username: str
    role: Role
    hospital_id: int | None
    doctor_id: int | None


def create_staff(s: Session, now: datetime, username: str, password: str, role: str, display_name: str,
                 hospital_id: int | None = None, doctor_id: int | None = None) -> StaffUser:
    role = Role(role)
    if role != Role.PLATFORM_ADMIN and hospital_id is None:
        raise DomainError("VALIDATION_ERROR", "医院员工必须属于一家医院")
    if hospital_id is not None and s.get(Hospital, hospital_id) is None:
        raise DomainError("NOT_FOUND", "未找到该医院")
    if role == Role.DOCTOR:
        doc = s.get(Doctor, doctor_id) if doctor_id else None
        if doc is None or doc.hospital_id != hospital_id:
            raise DomainError("VALIDATION_ERROR", "医生账号须关联本院的一位医生")
    if s.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        raise DomainError("VALIDATION_ERROR", "用户名已存在")
    user = StaffUser(username=username, display_name=display_name, password_hash=hash_password(password),
                     role=role, hospital_id=hospital_id if role != Role.PLATFORM_ADMIN else None,
                     doctor_id=doctor_id, created_at=now)
    s.add(user)
    s.flush()
    return user


def login(s: Session, now: datetime, username: str, password: str) -> str:
    user = s.scalar(select(StaffUser).where(StaffUser.username == (username or "").strip()))
    if user is None or not user.is_active or not verify_password(password or "", user.password_hash):
        raise DomainError("INVALID_CREDENTIALS", "用户名或密码错误")
    return issue_token(str(user.id), "staff", now, {
        "usr": user.username, "role": user.role, "hid": user.hospital_id, "did": user.doctor_id})


def from_claims(claims: dict) -> Staff:
    return Staff(id=int(claims["sub"]), username=claims["usr"], role=Role(claims["role"]),
                 hospital_id=claims.get("hid"), doctor_id=claims.get("did"))


def administered_hospital(s: Session, staff: Staff, hospital_id: int) -> Hospital:
    """The hospital a platform admin, or this hospital's own admin, is changing; others get 403/404."""
    check_role(staff.role, ADMINS)
    check_hospital(staff.role, staff.hospital_id, hospital_id)
    h = s.get(Hospital, hospital_id)
    if h is None:
        raise DomainError("NOT_FOUND", "未找到该医院")
    return h

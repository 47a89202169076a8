"""Hospital administration from the staff console: hospitals, release settings, departments, doctors.
Never commits; the console route owns the transaction and records the audit entry."""

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guahao.catalog.models import Department, Doctor, Hospital
from guahao.catalog.service import get_hospital
from guahao.errors import DomainError
from guahao.release.rules import ReleasePolicy, release_instant
from guahao.schedule.models import ClinicSession
from guahao.schedule.rules import TITLES


def _text(value: str, label: str, lo: int, hi: int) -> str:
    value = " ".join((value or "").split())
    if not lo <= len(value) <= hi:
        raise DomainError("VALIDATION_ERROR", f"{label}应为{lo}–{hi}个字符")
    return value


def create_hospital(s: Session, name: str, grade: str, district: str, address: str, phone: str) -> Hospital:
    name = _text(name, "医院名称", 2, 100)
    if s.scalar(select(Hospital.id).where(Hospital.name == name)):
        raise DomainError("VALIDATION_ERROR", "该医院已存在")
    h = Hospital(name=name, grade=_text(grade or "三级甲等", "等级", 2, 20), district=_text(district, "区域", 2, 20),
                 address=(address or "").strip()[:200], phone=(phone or "").strip()[:40], intro="")
    s.add(h)
    s.flush()
    return h


@dataclass(frozen=True)
class HospitalSettings:
    release_time: time
    window_days: int
    same_day_booking: bool
    cancel_deadline_time: time
    cancel_minutes_before: int | None
    checkin_lead_minutes: int
    reminder_time: time
    requires_visit_card: bool


def check_settings(st: HospitalSettings) -> None:
    if not 1 <= st.window_days <= 90:
        raise DomainError("VALIDATION_ERROR", "预约周期应为1–90天")
    if st.cancel_minutes_before is not None and not 0 <= st.cancel_minutes_before <= 24 * 60:
        raise DomainError("VALIDATION_ERROR", "就诊前取消分钟数应为0–1440")
    if not 0 <= st.checkin_lead_minutes <= 240:
        raise DomainError("VALIDATION_ERROR", "提前报到分钟数应为0–240")


def update_settings(s: Session, now: datetime, hospital_id: int, st: HospitalSettings) -> dict:
    """Apply new release/cancel/check-in settings; returns the changed fields as {name: [old, new]}.

    Sessions not yet released get their release instant recomputed (R1), so a changed release time or
    window applies to them; released sessions stay open.
    """
    check_settings(st)
    h = get_hospital(s, hospital_id)
    changed = {}
    for k, v in st.__dict__.items():
        old = getattr(h, k)
        if old != v:
            changed[k] = [str(old), str(v)]
            setattr(h, k, v)
    if {"release_time", "window_days"} & changed.keys():
        policy = ReleasePolicy(h.release_time, h.window_days, h.same_day_booking)
        pending = s.execute(select(ClinicSession.id, ClinicSession.visit_date).where(
            ClinicSession.hospital_id == h.id, ClinicSession.release_at > now)).all()
        for sid, visit_date in pending:
            s.execute(update(ClinicSession).where(ClinicSession.id == sid)
                      .values(release_at=max(release_instant(visit_date, policy), now)))
    s.flush()
    return changed


def add_department(s: Session, hospital_id: int, name: str, parent_id: int | None, location: str,
                   is_flagship: bool) -> Department:
    get_hospital(s, hospital_id)
    name = _text(name, "科室名称", 2, 50)
    if parent_id is not None:
        parent = s.get(Department, parent_id)
        if parent is None or parent.hospital_id != hospital_id or parent.parent_id is not None:
            raise DomainError("VALIDATION_ERROR", "请选择本院的一级科室")
    if s.scalar(select(Department.id).where(Department.hospital_id == hospital_id, Department.name == name,
                                            Department.parent_id.is_(parent_id) if parent_id is None
                                            else Department.parent_id == parent_id)):
        raise DomainError("VALIDATION_ERROR", "该科室已存在")
    d = Department(hospital_id=hospital_id, parent_id=parent_id, name=name, location=(location or "").strip()[:100],
                   is_flagship=is_flagship, intro="")
    s.add(d)
    s.flush()
    return d


def add_doctor(s: Session, hospital_id: int, department_id: int, name: str, title: str, specialties: str,
               years: int) -> Doctor:
    dept = s.get(Department, department_id)
    if dept is None or dept.hospital_id != hospital_id:
        raise DomainError("VALIDATION_ERROR", "请选择本院科室")
    if title not in TITLES:
        raise DomainError("VALIDATION_ERROR", "请选择医生职称")
    name = _text(name, "医生姓名", 2, 30)
    if s.scalar(select(Doctor.id).where(Doctor.department_id == department_id, Doctor.name == name)):
        raise DomainError("VALIDATION_ERROR", "该科室已有同名医生")
    if not 0 <= years <= 70:
        raise DomainError("VALIDATION_ERROR", "从医年限应为0–70年")
    doc = Doctor(hospital_id=hospital_id, department_id=department_id, name=name, title=title,
                 specialties=(specialties or "").strip()[:500], years_in_practice=years, intro="")
    s.add(doc)
    s.flush()
    return doc

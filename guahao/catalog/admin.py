"""Hospital administration from the staff console: hospitals, departments, doctors (release settings live
in guahao.release.service).
Never commits; the console route owns the transaction and records the audit entry."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.catalog.models import Department, Doctor, Hospital
from guahao.catalog.service import get_hospital
from guahao.errors import DomainError
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

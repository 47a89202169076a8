"""Browse hospitals, departments and doctors. Read-only."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.catalog.models import Department, Doctor, Hospital
from guahao.errors import DomainError


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_hospitals(s: Session, name: str | None = None, district: str | None = None,
                     department: str | None = None, limit: int = 100, offset: int = 0) -> list[Hospital]:
    q = select(Hospital)
    if name:
        q = q.where(Hospital.name.like(_like(name.strip()), escape="\\"))
    if district:
        q = q.where(Hospital.district.like(_like(district.strip()), escape="\\"))
    if department:
        q = q.where(Hospital.id.in_(select(Department.hospital_id).where(
            Department.name.like(_like(department.strip()), escape="\\"))))
    return list(s.scalars(q.order_by(Hospital.id).limit(limit).offset(offset)))


def get_hospital(s: Session, hospital_id: int) -> Hospital:
    h = s.get(Hospital, hospital_id)
    if h is None:
        raise DomainError("NOT_FOUND", "未找到该医院")
    return h


def flagships(s: Session, hospital_ids: list[int]) -> dict[int, list[Department]]:
    out: dict[int, list[Department]] = {h: [] for h in hospital_ids}
    if hospital_ids:
        for d in s.scalars(select(Department).where(Department.hospital_id.in_(hospital_ids),
                                                    Department.is_flagship.is_(True))
                           .order_by(Department.sort_order, Department.id)):
            out[d.hospital_id].append(d)
    return out


def departments(s: Session, hospital_id: int) -> list[Department]:
    get_hospital(s, hospital_id)
    return list(s.scalars(select(Department).where(Department.hospital_id == hospital_id)
                          .order_by(Department.sort_order, Department.id)))


def get_department(s: Session, department_id: int) -> Department:
    d = s.get(Department, department_id)
    if d is None:
        raise DomainError("NOT_FOUND", "未找到该科室")
    return d


def doctors(s: Session, department_id: int) -> list[Doctor]:
    dept = get_department(s, department_id)
    ids = [dept.id]
    if dept.parent_id is None:
        ids += list(s.scalars(select(Department.id).where(Department.parent_id == dept.id)))
    title_order = {"主任医师": 0, "副主任医师": 1, "主治医师": 2, "医师": 3}
    docs = list(s.scalars(select(Doctor).where(Doctor.department_id.in_(ids)).order_by(Doctor.id)))
    return sorted(docs, key=lambda d: (title_order.get(d.title, 9), d.id))


def get_doctor(s: Session, doctor_id: int) -> Doctor:
    d = s.get(Doctor, doctor_id)
    if d is None:
        raise DomainError("NOT_FOUND", "未找到该医生")
    return d

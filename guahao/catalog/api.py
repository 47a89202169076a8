from typing import Annotated

from fastapi import APIRouter, Path, Query

from guahao.catalog import service
from guahao.catalog.schemas import DepartmentOut, DepartmentRef, DoctorOut, HospitalDetail, HospitalOut
from guahao.deps import ReadSession

router = APIRouter(prefix="/api/v1", tags=["catalog"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Text = Annotated[str | None, Query(max_length=50)]


def _refs(depts) -> list[DepartmentRef]:
    return [DepartmentRef(id=d.id, name=d.name) for d in depts]


@router.get("/hospitals", response_model=list[HospitalOut])
def list_hospitals(s: ReadSession, name: Text = None, district: Text = None, department: Text = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 100,
                   offset: Annotated[int, Query(ge=0, le=100000)] = 0):
    hs = service.search_hospitals(s, name, district, department, limit, offset)
    flags = service.flagships(s, [h.id for h in hs])
    return [HospitalOut(flagship_departments=_refs(flags[h.id]), **_fields(h, HospitalOut)) for h in hs]


def _fields(obj, model) -> dict:
    return {k: getattr(obj, k) for k in model.model_fields if k != "flagship_departments" and hasattr(obj, k)}


@router.get("/hospitals/{hospital_id}", response_model=HospitalDetail)
def hospital(hospital_id: Id, s: ReadSession):
    h = service.get_hospital(s, hospital_id)
    return HospitalDetail(flagship_departments=_refs(service.flagships(s, [h.id])[h.id]),
                          **_fields(h, HospitalDetail))


@router.get("/hospitals/{hospital_id}/departments", response_model=list[DepartmentOut])
def departments(hospital_id: Id, s: ReadSession):
    depts = service.departments(s, hospital_id)
    nodes = {d.id: DepartmentOut(id=d.id, name=d.name, parent_id=d.parent_id, is_flagship=d.is_flagship,
                                 location=d.location, intro=d.intro) for d in depts}
    roots = []
    for d in depts:
        (nodes[d.parent_id].children if d.parent_id in nodes else roots).append(nodes[d.id])
    return roots


@router.get("/departments/{department_id}/doctors", response_model=list[DoctorOut])
def doctors(department_id: Id, s: ReadSession):
    return [DoctorOut(**_fields(d, DoctorOut)) for d in service.doctors(s, department_id)]


@router.get("/doctors/{doctor_id}", response_model=DoctorOut)
def doctor(doctor_id: Id, s: ReadSession):
    return DoctorOut(**_fields(service.get_doctor(s, doctor_id), DoctorOut))

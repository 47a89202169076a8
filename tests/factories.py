"""Building blocks for tests: valid ID numbers, a hospital with sessions, signed-up accounts."""

import itertools
from datetime import date, datetime, time

from stdnum.cn import ric

from guahao.catalog.models import Department, Doctor, Hospital
from guahao.clock import TZ
from guahao.release.rules import ReleasePolicy, release_instant
from guahao.schedule.models import ClinicSession, Slot
from guahao.schedule.rules import PERIODS, slot_periods

_seq = itertools.count(1)
_phones = itertools.count(1)


def id_number(birth: date = date(1990, 5, 17), area: str = "110105", n: int | None = None) -> str:
    n = next(_seq) % 1000 if n is None else n
    body = f"{area}{birth:%Y%m%d}{n:03d}"
    return body + ric.calc_check_digit(body + "0")


def phone() -> str:
    return f"139{next(_phones):08d}"


def local_dt(*args) -> datetime:
    return datetime(*args, tzinfo=TZ)


def hospital(s, name="测试医院", **kw) -> Hospital:
    h = Hospital(name=f"{name}{next(_seq)}", district="东城区", **kw)
    s.add(h)
    s.flush()
    return h


def department(s, h: Hospital, name="心血管内科") -> Department:
    cat = Department(hospital_id=h.id, name="内科")
    s.add(cat)
    s.flush()
    d = Department(hospital_id=h.id, parent_id=cat.id, name=name, location="门诊楼2层")
    s.add(d)
    s.flush()
    return d


def doctor(s, d: Department, name="李医生", title="主任医师") -> Doctor:
    doc = Doctor(hospital_id=d.hospital_id, department_id=d.id, name=f"{name}{next(_seq)}", title=title)
    s.add(doc)
    s.flush()
    return doc


def session(s, doc: Doctor, visit_date: date, period="AM", capacity=5, number_type="专家号", fee=6000,
            h: Hospital | None = None) -> ClinicSession:
    h = h or s.get(Hospital, doc.hospital_id)
    st, en = PERIODS[period]
    cs = ClinicSession(
        hospital_id=doc.hospital_id, department_id=doc.department_id, doctor_id=doc.id,
        visit_date=visit_date, period=period, starts_at=st, ends_at=en, number_type=number_type, fee=fee,
        capacity=capacity, booked=0, status="open", online_bookable=True,
        release_at=release_instant(visit_date, ReleasePolicy(h.release_time or time(7), h.window_days or 7)),
    )
    s.add(cs)
    s.flush()
    for seq, a, b in slot_periods(st, en, capacity):
        s.add(Slot(session_id=cs.id, seq=seq, starts_at=a, ends_at=b))
    s.flush()
    return cs


def slot_ids(s, cs: ClinicSession) -> list[int]:
    from sqlalchemy import select

    return list(s.scalars(select(Slot.id).where(Slot.session_id == cs.id).order_by(Slot.seq)))


def signup(client, name="王小明", id_no: str | None = None, ph: str | None = None, password="secret123"):
    """Create an account; returns (auth headers, self patient id, phone)."""
    ph = ph or phone()
    r = client.post("/api/v1/accounts", json=dict(phone=ph, password=password, name=name,
                                                  id_number=id_no or id_number()))
    assert r.status_code == 201, r.text
    tok = client.post("/api/v1/auth/token", data=dict(username=ph, password=password)).json()["access_token"]
    return {"Authorization": f"Bearer {tok}"}, r.json()["self_patient_id"], ph

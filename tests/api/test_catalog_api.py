"""Catalog browsing and the demo loader."""

from datetime import date

import time_machine
from sqlalchemy import func, select

from guahao.catalog.demo import generate_sessions, load_catalog
from guahao.catalog.models import Department, Doctor, Hospital
from guahao.schedule.models import ClinicSession, Slot


def test_demo_catalog_is_complete_and_idempotent(sqlite_db):
    db = sqlite_db
    with db.transaction() as s:
        assert load_catalog(s) == 49
        n = generate_sessions(s, date(2026, 11, 30))
        assert n > 1000
    with db.transaction() as s:
        assert load_catalog(s) == 0
        assert generate_sessions(s, date(2026, 11, 30)) == 0
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Hospital)) == 49
        titles = set(s.scalars(select(Doctor.title)))
        assert titles == {"主任医师", "副主任医师", "主治医师", "医师"}
        xiehe = s.scalar(select(Hospital).where(Hospital.name == "北京协和医院"))
        flag = list(s.scalars(select(Department.name).where(
            Department.hospital_id == xiehe.id, Department.is_flagship.is_(True))))
        assert flag == ["妇科", "内分泌科", "心内科", "肾病内科"]
        assert all(h.is_demo for h in s.scalars(select(Hospital)))
        # No regular sessions on a statutory holiday: 2027-01-01 (New Year) is outside; check a Sunday.
        assert s.scalar(select(func.count()).select_from(ClinicSession).where(
            ClinicSession.visit_date == date(2026, 12, 6))) == 0
        # Every session has exactly `capacity` numbered slots.
        bad = s.execute(select(ClinicSession.id).where(ClinicSession.capacity != select(func.count()).where(
            Slot.session_id == ClinicSession.id).scalar_subquery())).first()
        assert bad is None


def test_hospital_search_and_tree(client, db):
    with db.transaction() as s:
        load_catalog(s)
    hs = client.get("/api/v1/hospitals", params={"name": "同仁"}).json()
    assert {h["name"] for h in hs} == {"首都医科大学附属北京同仁医院", "亦庄同仁医院"}
    tongren = next(h for h in hs if h["name"] == "首都医科大学附属北京同仁医院")
    assert [d["name"] for d in tongren["flagship_departments"]] == ["眼科", "耳鼻咽喉科"]
    by_dept = client.get("/api/v1/hospitals", params={"department": "肛肠"}).json()
    assert [h["name"] for h in by_dept] == ["二龙路医院"]
    assert client.get("/api/v1/hospitals", params={"name": "%"}).json() == []
    detail = client.get(f"/api/v1/hospitals/{tongren['id']}").json()
    assert detail["release_time"] in ("07:00:00", "08:00:00", "08:30:00", "15:00:00")
    tree = client.get(f"/api/v1/hospitals/{tongren['id']}/departments").json()
    children = [c for root in tree for c in root["children"]]
    assert {"眼科", "耳鼻咽喉科"} <= {c["name"] for c in children}
    eye = next(c for c in children if c["name"] == "眼科")
    docs = client.get(f"/api/v1/departments/{eye['id']}/doctors").json()
    assert [d["title"] for d in docs] == ["主任医师", "副主任医师", "主治医师", "医师"]
    assert client.get("/api/v1/hospitals/999999").json()["error"]["code"] == "NOT_FOUND"


def test_slots_show_release_instant_and_remaining(client, db):
    with db.transaction() as s:
        load_catalog(s)
        generate_sessions(s, date(2026, 11, 30))
        cs = s.scalar(select(ClinicSession).where(ClinicSession.visit_date == date(2026, 12, 1))
                      .order_by(ClinicSession.id))
        dept, rel = cs.department_id, cs.release_at
    with time_machine.travel(rel, tick=False):
        data = client.get("/api/v1/slots", params={"department_id": dept, "date": "2026-12-01"}).json()
    sess = next(x for x in data["sessions"] if x["id"] == cs.id)
    assert sess["status"] == "available" and sess["remaining"] == sess["capacity"]
    assert sess["release_at"].startswith(rel.strftime("%Y-%m-%dT%H:%M"))
    mine = [x for x in data["slots"] if x["session_id"] == cs.id]
    assert [x["sequence_number"] for x in mine] == list(range(1, sess["capacity"] + 1))
    assert all(x["status"] == "available" for x in mine)

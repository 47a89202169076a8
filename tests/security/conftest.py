"""A small world for attacks: hospital 1 with its owner's data, hospital 2 with staff of every role."""

import os
from datetime import date

import pytest
import time_machine
from fastapi.testclient import TestClient

from guahao.config import Settings
from tests import factories as f

NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)
STAFF_PASSWORD = "staff1234"


def port(n: int) -> int:
    """A port for the servers these tests start: GUAHAO_TEST_PORT_BASE (default 8500) + n, so a checkout
    running beside others can move all of them into its own range."""
    return int(os.environ.get("GUAHAO_TEST_PORT_BASE", "8500")) + n


def limited_settings(**kw) -> Settings:
    """Production-like limits on (the suite default turns them off)."""
    return Settings(rate_limit_enabled=True, **kw)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as t:
        yield t


def staff_token(client, username: str) -> dict:
    r = client.post("/api/v1/staff/token", data=dict(username=username, password=STAFF_PASSWORD))
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def world(client, frozen):
    """Owner A (patient, booking, visit card at H1), other account B, staff of both hospitals."""
    from guahao.staff.service import create_staff

    db = client.app.state.db
    with db.transaction() as s:
        h1, h2 = f.hospital(s, "甲医院"), f.hospital(s, "乙医院")
        d1, d2 = f.department(s, h1), f.department(s, h2)
        doc1, doc2 = f.doctor(s, d1), f.doctor(s, d2)
        cs = f.session(s, doc1, D1, "AM", capacity=5)
        slots = f.slot_ids(s, cs)
        create_staff(s, NOW, "admin", STAFF_PASSWORD, "platform_admin", "平台")
        for hid, doc, tag in ((h1.id, doc1.id, "h1"), (h2.id, doc2.id, "h2")):
            create_staff(s, NOW, f"{tag}-admin", STAFF_PASSWORD, "hospital_admin", "管理", hid)
            create_staff(s, NOW, f"{tag}-clerk", STAFF_PASSWORD, "clerk", "挂号", hid)
            create_staff(s, NOW, f"{tag}-doctor", STAFF_PASSWORD, "doctor", "医生", hid, doc)
        ids = dict(h1=h1.id, h2=h2.id, d1=d1.id, doc1=doc1.id, session=cs.id, slots=slots)
    a_id = f.id_number()
    a, a_patient, a_phone = f.signup(client, name="欧阳秘密", id_no=a_id)
    b, b_patient, _ = f.signup(client, name="李四")
    r = client.put(f"/api/v1/patients/{a_patient}/visit-cards", headers=a,
                   json=dict(hospital_id=ids["h1"], card_number="CARD8842"))
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/appointments", headers=a,
                    json=dict(slot_id=slots[0], patient_id=a_patient, insurance_type="local"))
    assert r.status_code == 201, r.text
    booking = r.json()
    return dict(ids, a=a, b=b, a_patient=a_patient, b_patient=b_patient, a_phone=a_phone, a_id_number=a_id,
                booking=booking["id"], serial=booking["serial_number"], name="欧阳秘密")


def limited_client(db, **settings):
    from guahao.app import create_app
    from guahao.clock import SystemClock

    return TestClient(create_app(limited_settings(**settings), db=db, clock=SystemClock()),
                      raise_server_exceptions=False)

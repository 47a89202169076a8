"""A full scenario against a real uvicorn process (access log on, debug level): its whole output —
access lines, application logs, errors — must hold no ID number or phone (A6)."""

import re

import httpx

from tests import factories as f
from tests.security.conftest import port
from tests.security.server import base_env, migrate, serve

PORT = port(20)


def test_server_logs_hold_no_id_number_or_phone(tmp_path):
    env = base_env(f"sqlite:///{tmp_path / 'scan.db'}", GUAHAO_NOW="2026-12-01T10:00:00+08:00")
    migrate(env)
    log = tmp_path / "server.log"
    people = [(f.phone(), f.id_number()) for _ in range(3)]
    kid_id, kid_phone = f.id_number(), f.phone()
    with serve(PORT, env, log) as base, httpx.Client(base_url=base, timeout=10) as c:
        heads = []
        for ph, idn in people[:2]:
            assert c.post("/api/v1/accounts", json=dict(phone=ph, password="secret123", name="张三",
                                                        id_number=idn)).status_code == 201
            tok = c.post("/api/v1/auth/token", data=dict(username=ph, password="secret123")).json()
            heads.append({"Authorization": f"Bearer {tok['access_token']}"})
        h = heads[0]
        # Errors that carry the values: duplicate phone, bad ID, bad login, values in paths and queries.
        c.post("/api/v1/accounts", json=dict(phone=people[0][0], password="secret123", name="张三",
                                             id_number=people[2][1]))
        c.post("/api/v1/accounts", json=dict(phone=people[2][0], password="secret123", name="张三",
                                             id_number=people[2][1][:-1] + "0"))
        c.post("/api/v1/auth/token", data=dict(username=people[2][0], password="wrong-pass1"))
        c.post(f"/api/v1/auth/token?username={people[1][0]}", data=dict(username=people[1][0], password="x"))
        c.get(f"/api/v1/patients/{people[0][1]}", headers=h)
        c.get(f"/api/v1/hospitals?name={people[1][0]}")
        c.get(f"/nowhere/{people[2][1]}/{people[2][0]}")
        r = c.post("/api/v1/patients", headers=h, json=dict(name="张小", id_number=kid_id, phone=kid_phone,
                                                            relation="子女"))
        assert r.status_code == 201, r.text
        c.post("/api/v1/patients", headers=h, json=dict(name="张小", id_number=kid_id, phone=kid_phone,
                                                        relation="子女"))  # PATIENT_EXISTS
        c.get("/api/v1/patients", headers=h)
        c.post("/api/v1/appointments", headers=h, json=dict(slot_id=999999, patient_id=r.json()["id"],
                                                            insurance_type="self_pay"))
        c.post("/api/v1/accounts", content=b'{"phone": "' + people[2][0].encode() + b'", broken')
    text_out = log.read_text(errors="replace")
    assert '"POST /api/v1/accounts HTTP/1.1" 201' in text_out  # the access log was captured
    assert "138****" in text_out or "139****" in text_out  # masked forms do appear
    for ph, idn in people + [(kid_phone, kid_id)]:
        assert ph not in text_out, ph
        assert idn not in text_out, idn
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text_out)
    assert "Traceback" not in text_out

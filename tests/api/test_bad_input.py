"""Bad input gets a 4xx with the error body, never a 500."""

import pytest

from tests import factories as f


@pytest.mark.parametrize("method,path,kw", [
    ("post", "/api/v1/accounts", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ("post", "/api/v1/accounts", {"json": [1, 2, 3]}),
    ("post", "/api/v1/accounts", {"json": {"phone": 13800138000, "password": None}}),
    ("post", "/api/v1/accounts", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
    ("get", "/api/v1/hospitals/abc", {}),
    ("get", "/api/v1/hospitals/99999999999999999999", {}),
    ("get", "/api/v1/slots", {}),
    ("get", "/api/v1/slots?department_id=-1", {}),
    ("get", "/api/v1/slots?department_id=1&date=2026-13-40", {}),
    ("get", "/api/v1/hospitals?limit=100000", {}),
    ("delete", "/api/v1/hospitals/1", {}),
    ("get", "/api/v1/no/such/thing", {}),
])
def test_bad_requests_answer_4xx_with_error_body(client, method, path, kw):
    r = getattr(client, method)(path, **kw)
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()["error"]) >= {"code", "message"}


def test_authenticated_bad_bodies(client):
    h, pid, _ = f.signup(client)
    for body in ({"slot_id": "x", "patient_id": pid}, {"slot_id": 1, "patient_id": pid, "insurance_type": "gold"},
                 {"slot_id": 1, "patient_id": pid, "extra": 1}, {"slot_id": 2**40, "patient_id": pid}):
        r = client.post("/api/v1/appointments", headers=h, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR", body
    r = client.post("/api/v1/appointments", headers=h, json={"slot_id": 123456, "patient_id": pid})
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = client.post("/api/v1/patients", headers=h, json=dict(
        name="<script>alert(1)</script>", id_number=f.id_number(), phone=f.phone(), relation="子女"))
    assert r.json()["error"]["code"] == "INVALID_NAME"
    r = client.post("/api/v1/patients", headers=h, json=dict(
        name="王二", id_number=f.id_number(), phone=f.phone(), relation="朋友"))
    assert r.status_code == 422

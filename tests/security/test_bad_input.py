"""Bad input, on SQLite and PostgreSQL: malformed and huge bodies, wrong content types, invalid Unicode,
SQL-ish and script-ish strings in every text field → 4xx with the error JSON, nothing stored unescaped,
no table harmed."""

import json

from sqlalchemy import text

from tests import factories as f

NASTY = [
    "' OR '1'='1' --",
    '"; DROP TABLE accounts; --',
    "1; SELECT pg_sleep(5)",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}",
    "\u0000",
    "abc\u0000def",
    "\u202eevil",
    "𠀀𠀁",
    "%00%27",
    "x" * 5000,
]
# JSON texts that decode to strings Python holds but UTF-8 cannot encode (lone surrogates).
SURROGATES = ['"\\ud800"', '"a\\udfffb"']


def _error(r, *codes):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"]
    if codes:
        assert r.status_code in codes, (r.status_code, r.text[:300])
    return body["error"]


def _counts(db) -> dict:
    with db.engine.connect() as c:
        return {t: c.scalar(text(f'SELECT count(*) FROM "{t}"')) for t in ("accounts", "patients", "persons",
                                                                             "visit_cards", "bookings")}


def test_nasty_strings_in_every_text_field(client, world):
    a = world["a"]
    db = client.app.state.db
    before = _counts(db)
    created = 0
    good_account = dict(phone=f.phone(), password="secret123", name="张三", id_number=f.id_number())
    good_patient = dict(name="张小", id_number=f.id_number(), phone=f.phone(), relation="子女")
    for s in NASTY:
        for field in ("phone", "name", "id_number"):
            _error(client.post("/api/v1/accounts", json={**good_account, field: s}))
        # Any password is allowed if long and mixed enough: it is only ever hashed.
        r = client.post("/api/v1/accounts", json=dict(good_account, phone=f.phone(), id_number=f.id_number(),
                                                      password=s))
        assert r.status_code in (201, 422), r.text[:200]
        created += r.status_code == 201
        for field in good_patient:
            _error(client.post("/api/v1/patients", headers=a, json={**good_patient, field: s}))
        _error(client.put(f"/api/v1/patients/{world['a_patient']}/visit-cards", headers=a,
                          json=dict(hospital_id=world["h1"], card_number=s)))
        for who, url in (("account", "/api/v1/auth/token"), ("staff", "/api/v1/staff/token")):
            _error(client.post(url, data=dict(username=s, password=s)), 401, 422)
        for param in ("name", "district", "department"):
            r = client.get("/api/v1/hospitals", params={param: s})
            assert r.status_code in (200, 422), r.text[:200]
            if r.status_code == 200:
                assert r.json() == []  # bound as data, never as SQL: matches nothing
        r = client.get("/api/v1/admin/audit", params={"action": s},
                       headers=_staff(client))
        assert r.status_code in (200, 422) and (r.status_code == 422 or r.json() == [])
        key = s[:100] if s.isascii() and s.isprintable() else s.encode("utf-8", "surrogatepass")[:100]
        r = client.post("/api/v1/appointments", headers={**a, "Idempotency-Key": key},
                        json=dict(slot_id=world["slots"][1], patient_id=world["a_patient"],
                                  insurance_type="local"))
        assert r.status_code < 500, r.text[:300]
        if r.status_code == 201:  # a weird key is just a key; release the place for the next round
            client.post(f"/api/v1/appointments/{r.json()['id']}/cancel", headers=a)
    after = _counts(db)
    assert after["accounts"] == before["accounts"] + created and created >= 3
    assert after["patients"] == before["patients"] + created


def _staff(client):
    from tests.security.conftest import staff_token

    return staff_token(client, "admin")


def test_invalid_unicode_and_malformed_json(client, world):
    a = {**world["a"], "Content-Type": "application/json"}
    for raw in SURROGATES:
        body = f'{{"name": {raw}, "id_number": "{f.id_number()}", "phone": "{f.phone()}", "relation": "子女"}}'
        _error(client.post("/api/v1/patients", headers=a, content=body.encode()), 400, 422)
        body = '{"hospital_id": %d, "card_number": %s}' % (world["h1"], raw)
        _error(client.put(f"/api/v1/patients/{world['a_patient']}/visit-cards", headers=a,
                          content=body.encode()), 400, 422)
    for raw in (b"\xff\xfe\x00{", b'{"name": "\xc3\x28"}', b"{", b"[]", b"null", b'{"a":' * 500,
                b"\x00" * 100, json.dumps({"name": "张三"}).encode() + b"garbage"):
        _error(client.post("/api/v1/patients", headers=a, content=raw), 400, 422)


def test_wrong_content_types(client, world):
    a = world["a"]
    body = json.dumps(dict(name="张小", id_number=f.id_number(), phone=f.phone(), relation="子女")).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "image/png"):
        _error(client.post("/api/v1/patients", headers={**a, "Content-Type": ctype}, content=body))
    # A JSON body where a form is expected (login).
    _error(client.post("/api/v1/auth/token", json=dict(username="13800138000", password="x")), 422)


def test_huge_bodies_are_refused_before_reading(client, world):
    a = world["a"]
    r = client.post("/api/v1/patients", headers=a, content=b"{" + b" " * (70 * 1024) + b"}")
    assert _error(r, 413)["code"] == "PAYLOAD_TOO_LARGE"
    # Chunked (no Content-Length): counted as it streams.
    r = client.post("/api/v1/patients", headers=a, content=(b"x" * 1024 for _ in range(100)))
    assert _error(r, 413)["code"] == "PAYLOAD_TOO_LARGE"
    r = client.post("/api/v1/auth/token", headers={"Content-Length": "999999999"}, content=b"")
    assert r.status_code == 413
    # A body under the limit still works.
    r = client.post("/api/v1/patients", headers=a, json=dict(name="张小", id_number=f.id_number(),
                                                             phone=f.phone(), relation="子女"))
    assert r.status_code == 201


def test_pages_render_text_inert():
    """Jinja2 autoescapes every .html template, so a stored string can never become markup."""
    from starlette.requests import Request

    from guahao.web.templating import templates

    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": [],
                       "scheme": "http", "server": ("testserver", 80), "root_path": ""})
    html = templates.env.get_template("base.html").render(
        request=request, messages=[{"kind": "error", "text": "<script>alert(1)</script>"}])
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_unexpected_bug_answers_the_error_shape_without_a_traceback(sqlite_db, caplog):
    from fastapi import APIRouter
    from fastapi.testclient import TestClient

    from guahao import app as app_module
    from guahao.security.access import PUBLIC, audience

    broken = APIRouter(prefix="/api/v1")

    @broken.get("/broken")
    @audience(PUBLIC)
    def broken_route():
        raise RuntimeError("bug while handling 11010519491231002X")

    original = app_module.routers
    app_module.routers = lambda: original() + [broken]
    try:
        app = app_module.create_app(db=sqlite_db)
    finally:
        app_module.routers = original
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/broken")
    assert r.status_code == 500 and r.json() == {"error": {"code": "INTERNAL_ERROR",
                                                           "message": "服务器内部错误，请稍后再试"}}
    assert "Traceback" not in r.text and "11010519491231002X" not in caplog.text

"""Every route in the app's route table against every kind of caller (SECURITY.md, access table).

A route without an access rule fails here. Each non-public route is then called, with real object IDs
belonging to owner A at hospital 1, by: an anonymous caller, another account B, and every staff role of
hospital 2 (plus account tokens on staff routes). Allowed answers:

  account route   anonymous / staff token → 401;  other account → 404 for A's objects, or only B's data
  staff route     anonymous / account token → 401; wrong role → 403; right role of another hospital → 404
                  for hospital 1's objects, or a list without hospital 1's data
Nothing may answer 5xx, and nothing of A's (name, masked phone/ID, serial, card number) may appear.
"""

import re

from guahao.security.access import missing_rules, route_table
from guahao.staff.rules import Role
from tests.security.conftest import staff_token

PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _params(world) -> dict:
    """Values for path parameters: always the owner's / hospital 1's objects."""
    return dict(patient_id=world["a_patient"], booking_id=world["booking"], appointment_id=world["booking"],
                hospital_id=world["h1"], department_id=world["d1"], doctor_id=world["doc1"],
                session_id=world["session"], slot_id=world["slots"][0])


def _bodies(world) -> dict:
    """Valid bodies where the route needs one, so the answer reflects access, not validation."""
    return {
        ("POST", "/api/v1/appointments"): dict(slot_id=world["slots"][1], patient_id=world["a_patient"],
                                               insurance_type="local"),
        ("POST", "/api/v1/appointments/{booking_id}/reschedule"): dict(slot_id=world["slots"][2]),
        ("PUT", "/api/v1/patients/{patient_id}/visit-cards"): dict(hospital_id=world["h1"],
                                                                  card_number="EVIL0001"),
    }


def _secrets(world) -> list[str]:
    from guahao.accounts.rules import mask_id, mask_phone

    return [world["name"], world["serial"], "CARD8842", mask_phone(world["a_phone"]),
            mask_id(world["a_id_number"]), world["a_phone"], world["a_id_number"]]


def test_every_route_has_an_access_rule(client):
    assert missing_rules(client.app) == [], "declare these in guahao/security/access.py (RULES or @audience)"


def test_no_route_leaks_to_the_wrong_caller(client, world):
    params, bodies, secrets = _params(world), _bodies(world), _secrets(world)
    callers = {"anonymous": {}, "other account": world["b"]}
    for role in ("admin", "clerk", "doctor"):
        callers[f"h2-{role}"] = staff_token(client, f"h2-{role}")
    roles = {"h2-admin": Role.HOSPITAL_ADMIN, "h2-clerk": Role.CLERK, "h2-doctor": Role.DOCTOR}
    checked = 0
    for method, path, _, aud in route_table(client.app):
        if method == "MOUNT" or aud.kind == "public":
            continue
        names = PATH_PARAM.findall(path)
        unknown = [n for n in names if n not in params]
        assert not unknown, f"{method} {path}: add a value for {unknown} to _params()"
        url = PATH_PARAM.sub(lambda m: str(params[m.group(1)]), path)
        body = bodies.get((method, path), {})
        page = not path.startswith("/api/")
        for who, headers in callers.items():
            client.cookies.clear()  # no session carried over from an earlier call
            if page and headers:  # pages may read the token from their cookie instead of the header
                token = headers["Authorization"].split()[1]
                client.cookies.update({"staff_token": token} if who.startswith("h2-") else
                                      {"access_token": token, "token": token})
            r = client.request(method, url, headers=headers, json=body if method in ("POST", "PUT", "PATCH") else None,
                               follow_redirects=False)
            where = f"{method} {path} as {who}: {r.status_code} {r.text[:200]}"
            assert r.status_code < 500, where
            for s in secrets:
                assert s not in r.text, f"{where} leaks {s!r}"
            if page:
                # Pages deny by status or by a redirect to log-in; whatever they show must not leak
                # (checked above). A page without object IDs may show the caller their own data.
                expected = {401, 403, 404, 302, 303, 307} | ({200} if who != "anonymous" and not names else set())
            elif who == "anonymous":
                expected = {401}
            elif aud.kind == "account":
                # Another account: A's objects do not exist for B; a staff token is not an account token.
                expected = ({404} if names else {200, 201, 204, 404, 422}) if who == "other account" else {401}
            elif who == "other account":
                expected = {401}
            elif roles[who] not in aud.roles:
                expected = {403}
            else:
                expected = {404} if names and aud.scoped else {200, 422}
            assert r.status_code in expected, f"{where}; expected {sorted(expected)}"
            checked += 1
    assert checked >= 40
    client.cookies.clear()
    _owner_data_untouched(client, world)


def _owner_data_untouched(client, world):
    a = world["a"]
    b = client.get(f"/api/v1/appointments/{world['booking']}", headers=a).json()
    assert b["status"] == "booked" and b["sequence_number"] == 1
    p = client.get(f"/api/v1/patients/{world['a_patient']}", headers=a).json()
    assert p["visit_cards"] == [{"hospital_id": world["h1"], "card_number": "CARD8842"}]
    assert len(client.get("/api/v1/appointments", headers=a).json()) == 1


def test_guessed_ids_all_answer_not_found(client, world):
    """An attacker walking IDs 1..N sees only 404s for objects that are not theirs (or do not exist)."""
    b = world["b"]
    for i in range(1, 30):
        for url in (f"/api/v1/appointments/{i}", f"/api/v1/patients/{i}"):
            r = client.get(url, headers=b)
            if r.status_code == 200:  # B's own patient
                assert r.json()["id"] == world["b_patient"]
            else:
                assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
        r = client.post(f"/api/v1/appointments/{i}/cancel", headers=b)
        assert r.status_code == 404


def test_forged_and_expired_tokens_are_refused(client, world):
    import jwt

    from guahao.accounts.security import issue_token

    forged = jwt.encode({"sub": "1", "kind": "account", "exp": 4102444800}, "not-the-key", algorithm="HS256")
    none_alg = jwt.encode({"sub": "1", "kind": "account", "exp": 4102444800}, None, algorithm="none")
    staff_as_account = issue_token("1", "staff", world_now(), {"usr": "x", "role": "platform_admin"})
    account_as_staff = issue_token(str(1), "account", world_now())
    for tok in (forged, none_alg, staff_as_account, "garbage", ""):
        r = client.get("/api/v1/appointments", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401, tok
    r = client.get("/api/v1/admin/audit", headers={"Authorization": f"Bearer {account_as_staff}"})
    assert r.status_code == 401
    # Expired by the injected clock.
    from datetime import timedelta

    old = issue_token("1", "account", world_now() - timedelta(days=30))
    assert client.get("/api/v1/appointments", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def world_now():
    from tests.security.conftest import NOW

    return NOW


def test_enforcement_stops_a_route_that_forgot_its_guard(db, frozen):
    """Defence in depth: a new API route declared `account` but missing AccountId still answers 401."""
    from fastapi import APIRouter
    from fastapi.testclient import TestClient

    from guahao import app as app_module
    from guahao.security.access import ACCOUNT, audience

    leaky = APIRouter(prefix="/api/v1")

    @leaky.get("/leaky")
    @audience(ACCOUNT)
    def leaky_route():
        return {"secret": "everyone's data"}

    original = app_module.routers
    app_module.routers = lambda: original() + [leaky]
    try:
        app = app_module.create_app(db=db)
    finally:
        app_module.routers = original
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/leaky")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
        assert missing_rules(app) == []


def test_a_route_without_a_rule_is_reported(db):
    from fastapi import APIRouter

    from guahao import app as app_module

    extra = APIRouter(prefix="/api/v1")

    @extra.post("/undeclared/{thing_id}")
    def undeclared(thing_id: int):
        return {}

    original = app_module.routers
    app_module.routers = lambda: original() + [extra]
    try:
        app = app_module.create_app(db=db)
    finally:
        app_module.routers = original
    assert missing_rules(app) == ["POST /api/v1/undeclared/{thing_id}"]


def test_security_md_access_table_is_current(client):
    """SECURITY.md documents the answers; regenerate with `python -m guahao.security.access`."""
    from pathlib import Path

    from guahao.security.access import markdown_table

    doc = (Path(__file__).resolve().parents[2] / "SECURITY.md").read_text()
    table = doc.split("<!-- access-table:start -->")[1].split("<!-- access-table:end -->")[0].strip()
    assert table == markdown_table(client.app).strip()

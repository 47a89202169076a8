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

import pytest

from guahao.security.access import missing_rules, route_table
from guahao.staff.rules import Role
from tests.security.conftest import staff_token

PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _params(world) -> dict:
    """Values for path parameters: always the owner's / hospital 1's objects."""
    return dict(patient_id=world["a_patient"], booking_id=world["booking"], appointment_id=world["booking"],
                hospital_id=world["h1"], department_id=world["d1"], doctor_id=world["doc1"],
                session_id=world["session"], slot_id=world["slots"][0], template_id=world["template"],
                entry_id=world["entry"], ban_id=world["ban"], payment_id=world["payment"],
                day=world["day"].isoformat(), action="call-next", kind="payment", rid=world["payment"])


def _queries(world) -> dict:
    """Query strings that aim a route at the owner's / hospital 1's objects."""
    h1 = f"hospital_id={world['h1']}"
    return {
        ("GET", "/api/v1/staff/calendar"): f"start={world['day'].isoformat()}&{h1}",
        ("DELETE", "/api/v1/staff/calendar/{day}"): h1,
        ("GET", "/api/v1/staff/outbox"): h1,
        ("GET", "/api/v1/staff/hospitals/{hospital_id}/templates"): f"doctor_id={world['doc1']}",
        ("GET", "/api/v1/staff/check-in/search"): f"serial={world['serial']}",
        ("GET", "/api/v1/billing/summary"): f"patient_id={world['a_patient']}",
        ("GET", "/billing/paid"): f"booking_id={world['booking']}",
        ("GET", "/console/bookings"): f"serial={world['serial']}",
        ("GET", "/console/checkin"): f"serial={world['serial']}",
    }


def _bodies(world) -> dict:
    """Valid bodies where the route needs one, so the answer reflects access, not validation."""
    template = dict(weekday=2, period="PM", number_type="专家号", capacity=3, fee=100, online_bookable=True)
    return {
        ("POST", "/api/v1/appointments"): dict(slot_id=world["slots"][1], patient_id=world["a_patient"],
                                               insurance_type="local"),
        ("POST", "/api/v1/appointments/{booking_id}/reschedule"): dict(slot_id=world["slots"][2]),
        ("PUT", "/api/v1/patients/{patient_id}/visit-cards"): dict(hospital_id=world["h1"],
                                                                  card_number="EVIL0001"),
        ("PUT", "/api/v1/patients/{patient_id}/id-number"): dict(id_number="11010519491231002X"),
        ("PUT", "/api/v1/staff/hospitals/{hospital_id}/release-settings"): dict(window_days=3),
        ("PUT", "/api/v1/staff/doctors/{doctor_id}/templates"): template,
        ("POST", "/api/v1/staff/hospitals/{hospital_id}/generate-sessions"): {},
        ("PUT", "/api/v1/staff/calendar/{day}"): dict(is_workday=True, hospital_id=world["h1"]),
        ("POST", "/api/v1/staff/sessions/{session_id}/stop"): dict(reason="恶意停诊"),
        ("POST", "/api/v1/waitlist"): dict(session_id=world["session"], patient_id=world["a_patient"]),
        ("POST", "/api/v1/staff/bans/{ban_id}/lift"): dict(reason="恶意解禁"),
        ("POST", "/api/v1/payments"): dict(bill_ids=[world["bill"]]),
        ("POST", "/api/v1/staff/bills"): dict(booking_id=world["booking"],
                                             items=[dict(price_item_id=world["price_item"])]),
        # pages: form fields (a valid double-submit token is added, so the route's own checks answer)
        ("POST", "/patients/{patient_id}/cards"): dict(hospital_id=world["h1"], card_number="EVIL0001"),
        ("POST", "/patients/{patient_id}/id-number"): dict(id_number="11010519491231002X"),
        ("POST", "/sessions/{session_id}/book"): dict(slot_id=world["slots"][1], patient_id=world["a_patient"]),
        ("POST", "/appointments/{booking_id}/reschedule"): dict(slot_id=world["slots"][2]),
        ("POST", "/billing/bills/pay"): dict(bill_id=world["bill"]),
        ("POST", "/console/queue/{session_id}/bill"): dict(price_item_id=world["price_item"]),
        ("POST", "/console/hospitals/{hospital_id}/departments"): dict(name="恶意科室"),
        ("POST", "/console/hospitals/{hospital_id}/doctors"): dict(name="恶意医生"),
    }


# Routes without IDs in the path that still name the owner's objects in the body or query: the caller
# who may not see them gets 404, as for a path ID.
NAMES_OBJECTS = {
    ("POST", "/api/v1/appointments"), ("POST", "/api/v1/waitlist"), ("POST", "/api/v1/payments"),
    ("POST", "/api/v1/staff/bills"), ("GET", "/api/v1/staff/calendar"), ("GET", "/api/v1/staff/outbox"),
    ("GET", "/api/v1/billing/summary"), ("POST", "/sessions/{session_id}/book"), ("POST", "/billing/bills/pay"),
    ("GET", "/billing/paid"),
}
ACCOUNT_OBJECTS = {"patient_id", "booking_id", "appointment_id", "entry_id", "payment_id", "rid"}
CSRF = "matrix-csrf-token-0123456789"


def _secrets(world) -> list[str]:
    from guahao.accounts.rules import mask_id, mask_name, mask_phone

    return [world["name"], mask_name(world["name"]), world["serial"], "CARD8842", mask_phone(world["a_phone"]),
            mask_id(world["a_id_number"]), world["a_phone"], world["a_id_number"], world["out_trade_no"]]


@pytest.fixture
def rich(client, world):
    """The owner also has an order bill paid online, a refund that failed, a waitlist entry and a ban;
    hospital 1 has a price item, a weekly template and a calendar override."""
    from guahao.accounts.models import Ban, Patient
    from guahao.billing.models import Bill, PriceItem
    from guahao.billing.service import request_refund
    from guahao.catalog.models import Doctor
    from guahao.schedule import planning
    from guahao.visits.models import QueueEntry
    from guahao.waitlist.models import WaitlistEntry
    from tests.security.conftest import D1, NOW

    db = client.app.state.db
    with db.transaction() as s:
        item = PriceItem(hospital_id=world["h1"], code="BLOOD", name="血常规", category="exam", unit_price=2500,
                         local_pct=80, non_local_pct=60)
        s.add(item)
        t = planning.set_template(s, NOW, s.get(Doctor, world["doc1"]), 0, "AM", "普通号", 10, 5000)
        planning.set_override(s, NOW, "h1-admin", D1, False, world["h1"], None, "院庆")
        person = s.get(Patient, world["a_patient"]).person_id
        entry = WaitlistEntry(session_id=world["session"], account_id=s.get(Patient, world["a_patient"]).account_id,
                              patient_id=world["a_patient"], person_id=person, insurance_type="local",
                              status="waiting", created_at=NOW)
        ban = Ban(person_id=person, starts_on=D1, ends_on=D1, reason="爽约", created_at=NOW)
        # A place in the session's queue (its patient's name is on the doctor's queue view).
        queued = QueueEntry(booking_id=world["booking"], session_id=world["session"], doctor_id=world["doc1"],
                            seq=1, sort_key=1000, state="waiting", channel="online", checked_in_at=NOW)
        s.add_all([entry, ban, queued])
        s.flush()
        ids = dict(price_item=item.id, template=t.id, entry=entry.id, ban=ban.id, day=D1)
    doctor = staff_token(client, "h1-doctor")
    r = client.post("/api/v1/staff/bills", headers=doctor,
                    json=dict(booking_id=world["booking"], items=[dict(price_item_id=ids["price_item"])]))
    assert r.status_code == 201, r.text
    bill = r.json()["id"]
    # Control: hospital 1's own doctor does see the owner (masked) in the queue, so a leak would show.
    from guahao.accounts.rules import mask_name

    assert mask_name(world["name"]) in client.get(f"/api/v1/staff/sessions/{world['session']}/queue",
                                                  headers=doctor).text
    r = client.post("/api/v1/payments", headers=world["a"], json=dict(bill_ids=[bill]))
    assert r.status_code == 201, r.text
    pay = r.json()
    assert client.post(f"{pay['pay_url']}/confirm", data={"action": "pay"}).status_code in (200, 303)
    provider = client.app.state.payment_provider
    provider.fail_refunds = 1
    with db.transaction() as s:
        from guahao.billing.models import Payment

        b = s.get(Bill, bill)
        ids["refund"] = request_refund(s, NOW, provider, s.get(Payment, pay["payment_id"]), b, 100, "test").id
    with db.reading() as s:  # sent (and refused) once the transaction committed
        from guahao.billing.models import Refund

        assert s.get(Refund, ids["refund"]).status == "failed"
    return dict(world, **ids, bill=bill, payment=pay["payment_id"], out_trade_no=pay["out_trade_no"])


def test_every_route_has_an_access_rule(client):
    assert missing_rules(client.app) == [], "declare these in guahao/security/access.py (RULES or @audience)"


def _expected(method, path, aud, who, role, names) -> set[int]:
    page = not path.startswith("/api/")
    aimed = bool(names) or (method, path) in NAMES_OBJECTS
    if who == "anonymous":
        # Pages send a visitor to their log-in page (303) or answer 401 (htmx fragments).
        return {401, 303} if page else {401}
    if aud.kind == "account":
        if who != "other account":
            # A staff cookie is no account log-in: the page asks to log in; the API refuses the token.
            return {401, 303} if page else {401}
        # Another account: A's objects do not exist for B; otherwise B sees (or changes) only B's data
        # (a session or hospital in the path is public: B may book it for B's own patients).
        aimed = (method, path) in NAMES_OBJECTS or bool(set(names) & ACCOUNT_OBJECTS)
        return {404} if aimed else {200, 201, 204, 303, 409, 422}
    if who == "other account":
        return {401, 303} if page else {401}
    if role not in aud.roles:
        return {403}
    # The right role at another hospital: hospital 1's objects do not exist for it.
    return {404} if aimed and aud.scoped else {200, 201, 204, 303, 422}


def test_no_route_leaks_to_the_wrong_caller(client, rich):
    world = rich
    params, queries, bodies, secrets = _params(world), _queries(world), _bodies(world), _secrets(world)
    callers = {"anonymous": {}, "other account": world["b"]}
    for role in ("admin", "clerk", "doctor"):
        callers[f"h2-{role}"] = staff_token(client, f"h2-{role}")
    roles = {"h2-admin": Role.HOSPITAL_ADMIN, "h2-clerk": Role.CLERK, "h2-doctor": Role.DOCTOR}
    checked, wrong = 0, []
    for method, path, _, aud in route_table(client.app):
        if method == "MOUNT" or aud.kind == "public":
            continue
        names = PATH_PARAM.findall(path)
        unknown = [n for n in names if n not in params]
        assert not unknown, f"{method} {path}: add a value for {unknown} to _params()"
        url = PATH_PARAM.sub(lambda m: str(params[m.group(1)]), path)
        if (method, path) in queries:
            url += "?" + queries[(method, path)]
        body = bodies.get((method, path), {})
        page = not path.startswith("/api/")
        for who, headers in callers.items():
            client.cookies.clear()  # no session carried over from an earlier call
            kw = {}
            if page:
                # Pages read the log-in from their cookie; forms carry a valid double-submit token, so the
                # route's own access checks answer, not the CSRF check.
                client.cookies.set("csrf_token", CSRF)
                if headers:
                    token = headers["Authorization"].split()[1]
                    client.cookies.update({"staff_token": token} if who.startswith("h2-") else
                                          {"access_token": token, "token": token})
                headers = {}
                if method == "POST":
                    kw["data"] = dict(body, csrf_token=CSRF)
            elif method in ("POST", "PUT", "PATCH"):
                kw["json"] = body
            r = client.request(method, url, headers=headers, follow_redirects=False, **kw)
            where = f"{method} {path} as {who}: {r.status_code} {r.headers.get('location', '')} {r.text[:200]}"
            assert r.status_code < 500, where
            for s in secrets:
                # (a search form may echo what the caller typed: only what they did not send counts)
                assert s not in r.text or s in url, f"{where} leaks {s!r}"
            expected = _expected(method, path, aud, who, roles.get(who), names)
            if r.status_code not in expected:
                wrong.append(f"{where}; expected {sorted(expected)}")
            elif r.status_code == 303 and expected <= {401, 303}:
                assert r.headers["location"].startswith(("/login", "/console/login")), where
            checked += 1
    assert not wrong, "\n".join(wrong)
    assert checked >= 4 * 100
    client.cookies.clear()
    _owner_data_untouched(client, world)


def _owner_data_untouched(client, world):
    a = world["a"]
    b = client.get(f"/api/v1/appointments/{world['booking']}", headers=a).json()
    assert b["status"] == "booked" and b["sequence_number"] == 1
    p = client.get(f"/api/v1/patients/{world['a_patient']}", headers=a).json()
    assert p["visit_cards"] == [{"hospital_id": world["h1"], "card_number": "CARD8842"}]
    assert len(client.get("/api/v1/appointments", headers=a).json()) == 1
    assert client.get(f"/api/v1/waitlist/{world['entry']}", headers=a).json()["status"] == "waiting"
    paid = client.get("/api/v1/bills", headers=a).json()
    assert [(x["id"], x["status"]) for x in paid] == [(world["bill"], "paid")]
    assert client.get(f"/api/v1/payments/{world['payment']}", headers=a).json()["status"] == "paid"
    from guahao.accounts.models import Ban
    from guahao.billing.models import Refund
    from guahao.schedule.models import ClinicSession, ScheduleTemplate
    from guahao.visits.models import QueueEntry

    with client.app.state.db.reading() as s:
        # Another hospital's admin retrying refunds must not touch hospital 1's failed refund.
        assert s.get(Refund, world["refund"]).status == "failed"
        assert s.get(Ban, world["ban"]).lifted_at is None
        assert s.get(ScheduleTemplate, world["template"]).active
        assert s.get(ClinicSession, world["session"]).status == "open"
        q = s.get(QueueEntry, world["booking"])
        assert (q.state, q.called_at, q.pass_count) == ("waiting", None, 0)


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


def test_receipts_of_another_account_are_not_found(client, rich):
    """Both kinds of receipt, HTML and PDF, by their real numbers: 404 to another account, served to the owner."""
    world = rich
    for kind, rid in (("payment", world["payment"]), ("refund", world["refund"])):
        for suffix in ("", ".pdf"):
            url = f"/billing/receipts/{kind}/{rid}{suffix}"
            client.cookies.clear()
            client.cookies.set("access_token", world["b"]["Authorization"].split()[1])
            r = client.get(url, follow_redirects=False)
            assert r.status_code == 404 and world["out_trade_no"] not in r.text and world["name"] not in r.text, url
            client.cookies.set("access_token", world["a"]["Authorization"].split()[1])
            assert client.get(url, follow_redirects=False).status_code == 200, url
    client.cookies.clear()


def test_forged_and_expired_tokens_are_refused(client, world):
    import jwt

    from guahao.accounts.security import issue_token

    wrong_key = "not-the-server-key-but-32-bytes-or-more"  # long enough that PyJWT does not warn
    forged = jwt.encode({"sub": "1", "kind": "account", "exp": 4102444800}, wrong_key, algorithm="HS256")
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

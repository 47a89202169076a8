"""Notifications (S1): reminder the evening before, confirmations, dispatch, SMS adapter; SMS codes (A1)."""

import json
from datetime import date, timedelta

import httpx
import pytest
import time_machine
from sqlalchemy import select

from guahao.accounts.security import verify_password
from guahao.accounts.models import Account
from guahao.clock import UTC
from guahao.notifications.models import Notification, SmsCode
from guahao.notifications.senders import HttpSmsSender, SendError
from guahao.notifications.service import dispatch
from guahao.worker.jobs import run_all
from tests import factories as f
from tests.clockwork_helpers import outbox, staff_headers


@pytest.fixture
def booked(db, client):
    """Two patients booked on 12-03 at a hospital reminding at 18:00 (default)."""
    with db.transaction() as s:
        h = f.hospital(s)
        cs = f.session(s, f.doctor(s, f.department(s, h)), date(2026, 12, 3), capacity=3)
        sids = f.slot_ids(s, cs)
        hid = h.id
    with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
        users = [f.signup(client) for _ in range(2)]
        bids = [client.post("/api/v1/appointments", headers=u[0], json=dict(slot_id=sid, patient_id=u[1])).json()["id"]
                for u, sid in zip(users, sids)]
    return dict(h=hid, users=users, bids=bids)


def _run(db, at):
    return run_all(db, lambda: at.astimezone(UTC))


def test_reminder_appears_in_the_outbox_the_evening_before_once(client, db, booked):
    _run(db, f.local_dt(2026, 12, 2, 17, 59, 59))
    assert outbox(db, "reminder") == []
    # Confirmations went out already (the booking_notices job), one per booking.
    assert sorted(n.booking_id for n in outbox(db, "booking_confirmed")) == sorted(booked["bids"])
    res = _run(db, f.local_dt(2026, 12, 2, 18, 0, 0))
    assert res["reminders"] == 2
    _run(db, f.local_dt(2026, 12, 2, 18, 1, 0))
    _run(db, f.local_dt(2026, 12, 2, 21, 0, 0))
    rem = outbox(db, "reminder")
    assert sorted(n.booking_id for n in rem) == sorted(booked["bids"])
    assert all("明天" in n.body and "12月03日" in n.body and n.status == "sent" for n in rem)
    assert len(outbox(db, "booking_confirmed")) == 2


def test_hospital_reminder_time_and_cancel_notice(client, db, booked):
    with time_machine.travel(f.local_dt(2026, 12, 2, 9, 0), tick=False):  # tokens of 12-01 10:00 still valid
        admin = staff_headers(client, hospital_id=booked["h"])
        assert client.put(f"/api/v1/staff/hospitals/{booked['h']}/release-settings", headers=admin,
                          json=dict(reminder_time="20:30:00")).status_code == 200
        u = booked["users"][1]
        assert client.post(f"/api/v1/appointments/{booked['bids'][1]}/cancel", headers=u[0]).status_code == 200
    _run(db, f.local_dt(2026, 12, 2, 20, 29))
    assert outbox(db, "reminder") == []
    assert [n.booking_id for n in outbox(db, "booking_cancelled")] == [booked["bids"][1]]
    _run(db, f.local_dt(2026, 12, 2, 20, 30))
    assert [n.booking_id for n in outbox(db, "reminder")] == [booked["bids"][0]]  # not the cancelled one
    with time_machine.travel(f.local_dt(2026, 12, 2, 21, 0), tick=False):
        rows = client.get("/api/v1/staff/outbox", headers=admin).json()
        assert {r["kind"] for r in rows} >= {"reminder", "booking_cancelled", "booking_confirmed"}
        assert all("****" in r["phone"] for r in rows)
        other = staff_headers(client, hospital_id=_other(db))
        assert client.get(f"/api/v1/staff/outbox?hospital_id={booked['h']}", headers=other).status_code == 404
        assert client.get("/api/v1/staff/outbox", headers=other).json() == []


def _other(db):
    with db.transaction() as s:
        return f.hospital(s, name="别院").id


def test_sms_adapter_signs_and_reports_refusals(db, client, booked):
    seen = []

    def handler(request: httpx.Request):
        seen.append(request)
        body = json.loads(request.content)
        return httpx.Response(200, json={"code": "OK" if body["phone"].startswith("139") else "BLOCKED"})

    sender = HttpSmsSender("https://sms.example.invalid/send", "ak", "sk",
                           client=httpx.Client(transport=httpx.MockTransport(handler)))
    _run_notices_only(db)
    with db.transaction() as s:
        assert dispatch(s, f.local_dt(2026, 12, 1, 10, 1), sender) == 2
    assert len(seen) == 2
    r = seen[0]
    assert r.headers["X-Signature"] == sender.signature(r.content)
    assert r.headers["Idempotency-Key"] == json.loads(r.content)["out_id"]
    assert {n.sender for n in outbox(db)} == {"sms"}
    # A code delivered by SMS does not keep its digits in the outbox.
    with db.transaction() as s:
        from guahao.notifications.codes import request_code
        request_code(s, f.local_dt(2026, 12, 1, 10, 2), "13912340000", "signup")
        assert dispatch(s, f.local_dt(2026, 12, 1, 10, 2), sender) == 1
    assert outbox(db, "sms_code")[0].body == "（验证码已发送）"
    bad = HttpSmsSender("https://x.invalid", "ak", "sk",
                        client=httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(500))))
    with pytest.raises(SendError):
        bad.send("13900000000", "x", "1")


def _run_notices_only(db):
    from guahao.notifications.service import booking_notices
    with db.transaction() as s:
        booking_notices(s, f.local_dt(2026, 12, 1, 10, 1))


def _latest_code(db, phone):
    with db.reading() as s:
        n = s.scalars(select(Notification).where(Notification.kind == "sms_code").order_by(Notification.id.desc())).first()
        assert n.phone == phone
        return n.body.split("验证码为")[1][:6]


def test_sms_code_limits_and_signup_with_code(client, db):
    client.app.state.settings = client.app.state.settings.model_copy(update={"require_sms_code": True})
    ph = "13712345678"
    t0 = f.local_dt(2026, 12, 1, 10, 0)
    with time_machine.travel(t0, tick=False):
        r = client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="signup"))
        assert r.status_code == 202 and r.json() == {"expires_in": 300, "resend_after": 60}
        r = client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="signup"))
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"
        body = dict(phone=ph, password="secret123", name="赵六", id_number=f.id_number())
        assert client.post("/api/v1/accounts", json=body).json()["error"]["code"] == "SMS_CODE_REQUIRED"
        code = _latest_code(db, ph)
        wrong = "000000" if code != "000000" else "111111"
        for i in range(4):
            r = client.post("/api/v1/accounts", json={**body, "sms_code": wrong})
            assert r.json()["error"]["code"] == "SMS_CODE_INVALID"
        # The 5th wrong try voids the code: even the right one no longer works.
        assert client.post("/api/v1/accounts", json={**body, "sms_code": wrong}).json()["error"]["code"] == "SMS_CODE_EXPIRED"
        assert client.post("/api/v1/accounts", json={**body, "sms_code": code}).json()["error"]["code"] == "SMS_CODE_EXPIRED"
    with time_machine.travel(t0 + timedelta(seconds=60), tick=False):
        assert client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="signup")).status_code == 202
        code = _latest_code(db, ph)
    with time_machine.travel(t0 + timedelta(seconds=60 + 300), tick=False):  # valid 5 minutes, not a second more
        assert client.post("/api/v1/accounts", json={**body, "sms_code": code}).json()["error"]["code"] == "SMS_CODE_EXPIRED"
    with time_machine.travel(t0 + timedelta(seconds=120), tick=False):
        assert client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="signup")).status_code == 202
        code = _latest_code(db, ph)
    with time_machine.travel(t0 + timedelta(seconds=120 + 299), tick=False):
        r = client.post("/api/v1/accounts", json={**body, "sms_code": code})
        assert r.status_code == 201, r.text
    # 10 codes per phone per day: 3 sent so far; 7 more, then refused until tomorrow.
    for i in range(7):
        with time_machine.travel(t0 + timedelta(minutes=10 + i * 2), tick=False):
            assert client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="reset")).status_code == 202
    with time_machine.travel(t0 + timedelta(minutes=40), tick=False):
        r = client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="reset"))
        assert r.status_code == 429 and "10" in r.json()["error"]["message"]
    with time_machine.travel(f.local_dt(2026, 12, 2, 0, 0, 1), tick=False):
        assert client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="reset")).status_code == 202
        code = _latest_code(db, ph)
        r = client.post("/api/v1/password-resets", json=dict(phone=ph, sms_code=code, new_password="newpass99"))
        assert r.status_code == 204, r.text
        assert client.post("/api/v1/password-resets", json=dict(
            phone=ph, sms_code=code, new_password="newpass99")).json()["error"]["code"] == "SMS_CODE_EXPIRED"
        assert client.post("/api/v1/auth/token", data=dict(username=ph, password="newpass99")).status_code == 200
    with db.reading() as s:
        assert all(len(c.code_hash) == 64 for c in s.scalars(select(SmsCode)))
        assert verify_password("newpass99", s.scalar(select(Account.password_hash)))
    with time_machine.travel(f.local_dt(2026, 12, 2, 0, 1), tick=False):
        rows = client.get("/api/v1/staff/outbox?kind=sms_code", headers=staff_headers(client, role="platform_admin"))
        assert rows.status_code == 200 and rows.json()
        assert all("验证码短信" in r["body"] and r["phone"] == "137****5678" for r in rows.json())


def test_codes_not_sent_to_phones_that_would_reveal_registration(client, db):
    with time_machine.travel(f.local_dt(2026, 12, 1, 10, 0), tick=False):
        _, _, ph = f.signup(client)
        assert client.post("/api/v1/sms-codes", json=dict(phone=ph, purpose="signup")).status_code == 202
        assert client.post("/api/v1/sms-codes", json=dict(phone="13600000001", purpose="reset")).status_code == 202
        assert outbox(db, "sms_code") == []
        # Signing up without a code still works while GUAHAO_REQUIRE_SMS_CODE is off (the default).
        assert not client.app.state.settings.require_sms_code
        f.signup(client)




def test_sender_follows_the_settings():
    from guahao.config import Settings
    from guahao.notifications.senders import OutboxSender, sender_from_settings

    assert isinstance(sender_from_settings(Settings()), OutboxSender)
    sms = sender_from_settings(Settings(sms_endpoint="https://sms.example.invalid", sms_access_key="a", sms_secret="b"))
    assert isinstance(sms, HttpSmsSender) and sms.endpoint == "https://sms.example.invalid"

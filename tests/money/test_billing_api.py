"""M1–M3 and X2 through the API, on SQLite and PostgreSQL: prepayment, sandbox callbacks, expiry, refund
tiers, stopped sessions, refund retries, refunds sent after the commit, insurance split, bills paid
together, receipts, totals, ledger."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from guahao.billing import outbox
from guahao.billing.models import Payment, PaymentEvent, Refund, SandboxRefund, SandboxTxn
from guahao.billing.providers import SandboxProvider
from guahao.billing.service import UNSENT_AFTER, cancel_booking, retry_refunds
from guahao.booking.models import Booking
from tests import factories as f
from tests.money.helpers import NOW, book, ledger_ok, make_world, pay_via_sandbox, set_hospital, staff_headers


@pytest.fixture
def world(db):
    return make_world(db, prepay=True)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as t:
        yield t


def provider(client) -> SandboxProvider:
    return client.app.state.payment_provider


def test_prepaid_booking_paid_through_the_sandbox(client, world, frozen, db):
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    assert b["status"] == "pending_payment"
    # The unpaid booking holds its slot.
    h2, p2, _ = f.signup(client)
    r = client.post("/api/v1/appointments", headers=h2, json=dict(slot_id=world["am_slots"][0], patient_id=p2))
    assert r.json()["error"]["code"] == "SLOT_TAKEN"
    # Check-in is refused until paid.
    pay = pay_via_sandbox(client, h, b["id"])
    assert pay["amount"] == 5000 and pay["expires_at"].startswith("2026-12-01T06:15")  # 15 min after booking
    assert client.get(f"/api/v1/appointments/{b['id']}", headers=h).json()["status"] == "booked"
    assert client.get(f"/api/v1/payments/{pay['payment_id']}", headers=h).json()["status"] == "paid"
    # Replaying the provider's notification changes nothing.
    with db.reading() as s:
        txn = s.get(SandboxTxn, pay["out_trade_no"])
    note = provider(client).notification(txn.out_trade_no, txn.txn_id, txn.amount, NOW)
    r = client.post("/api/v1/payments/notify/sandbox", json=note)
    assert r.status_code == 200 and r.json() == {"code": "SUCCESS", "message": "duplicate"}
    r = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h)
    assert r.json()["error"]["code"] == "ALREADY_PAID"
    receipts = client.get("/api/v1/receipts", headers=h).json()
    assert [(x["kind"], x["amount"]) for x in receipts] == [("payment", 5000)]
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained) == (5000, 0, 5000)


def test_forged_unknown_and_wrong_amount_callbacks(client, world, frozen, db):
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h).json()
    good = provider(client).notification(pay["out_trade_no"], "TXN1", 5000, NOW)
    forged = {**good, "total_fee": "1"}  # altered after signing
    r = client.post("/api/v1/payments/notify/sandbox", json=forged)
    assert r.status_code == 400 and r.json()["message"] == "bad_signature"
    other_key = SandboxProvider("someone-else").notification(pay["out_trade_no"], "TXN1", 5000, NOW)
    assert client.post("/api/v1/payments/notify/sandbox", json=other_key).status_code == 400
    unknown = provider(client).notification("P000NOPE", "TXN2", 5000, NOW)
    r = client.post("/api/v1/payments/notify/sandbox", json=unknown)
    assert r.status_code == 400 and r.json()["message"] == "unknown_order"
    wrong = provider(client).notification(pay["out_trade_no"], "TXN1", 4999, NOW)
    assert client.post("/api/v1/payments/notify/sandbox", json=wrong).json()["message"] == "amount_mismatch"
    assert client.post("/api/v1/payments/notify/sandbox", content=b"garbage",
                       headers={"content-type": "application/json"}).status_code == 400
    assert client.get(f"/api/v1/appointments/{b['id']}", headers=h).json()["status"] == "pending_payment"
    with db.reading() as s:
        outcomes = s.scalars(select(PaymentEvent.outcome).order_by(PaymentEvent.id)).all()
    assert outcomes == ["bad_signature", "bad_signature", "unknown_order", "amount_mismatch", "bad_signature"]
    ledger_ok(db)


def test_unpaid_booking_expires_and_frees_the_slot(client, world, db):
    from guahao.billing.service import expire_unpaid

    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        b = book(client, h, world["am_slots"][0], pid)
        pay = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h).json()
    with time_machine.travel(NOW + timedelta(minutes=14, seconds=59), tick=False):
        with db.transaction() as s:
            assert expire_unpaid(s, NOW + timedelta(minutes=14, seconds=59), provider(client)) == 0
    later = NOW + timedelta(minutes=15)
    with time_machine.travel(later, tick=False):
        with db.transaction() as s:
            assert expire_unpaid(s, later, provider(client)) == 1
        assert client.get(f"/api/v1/appointments/{b['id']}", headers=h).json()["status"] == "expired"
        r = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h)
        assert r.json()["error"]["code"] == "PAYMENT_EXPIRED"
        # The sandbox order is closed: the payer cannot pay any more.
        r = client.post(f"{pay['pay_url']}/confirm", data={"action": "pay"}, follow_redirects=False)
        assert r.status_code == 409
        # The slot is free again at once.
        h2, p2, _ = f.signup(client)
        assert book(client, h2, world["am_slots"][0], p2)["status"] == "pending_payment"
        # Money that reached the provider just before it closed the order is refunded, never credited.
        with db.transaction() as s:
            s.get(SandboxTxn, pay["out_trade_no"]).status = "paid"
            txn = s.get(SandboxTxn, pay["out_trade_no"])
            note = provider(client).notification(txn.out_trade_no, txn.txn_id, txn.amount, later)
        r = client.post("/api/v1/payments/notify/sandbox", json=note)
        assert r.json() == {"code": "SUCCESS", "message": "refunded_unapplied"}
        assert client.post("/api/v1/payments/notify/sandbox", json=note).json()["message"] == "duplicate"
        with db.reading() as s:
            refunds = s.scalars(select(Refund)).all()
        assert [(x.amount, x.status, x.reason) for x in refunds] == [(5000, "succeeded", "order_no_longer_payable")]
        rep = ledger_ok(db)
        assert (rep.paid, rep.refunded, rep.retained) == (5000, 5000, 0)


@pytest.mark.parametrize("when, refund, tier", [
    (f.local_dt(2026, 12, 1, 23, 59, 59), 5000, "full"),  # the day before
    (f.local_dt(2026, 12, 2, 7, 0), 4500, "partial"),  # visit day, exactly 1 h before 08:00
    (f.local_dt(2026, 12, 2, 7, 0, 1), 0, "none"),  # less than 1 h before
])
def test_refund_tiers_at_their_edges(client, world, db, when, refund, tier):
    # The hospital lets patients cancel online until the period starts, so every tier is reachable.
    set_hospital(db, world["h"], cancel_minutes_before=0)
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        b = book(client, h, world["am_slots"][0], pid)
        pay_via_sandbox(client, h, b["id"])
    with time_machine.travel(when, tick=False):
        p = client.get(f"/api/v1/appointments/{b['id']}/cancel-preview", headers=h).json()
        assert (p["cancellable"], p["paid"], p["refund"], p["kept"], p["tier"]) == (True, 5000, refund,
                                                                                     5000 - refund, tier)
        assert client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h).json()["status"] == "cancelled"
        got = client.get(f"/api/v1/appointments/{b['id']}/billing", headers=h).json()
        assert sum(r["amount"] for r in got["refunds"] if r["status"] == "succeeded") == refund
        assert got["bill"]["refunded_amount"] == refund
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained) == (5000, refund, 5000 - refund)


def test_default_deadline_and_preview_when_not_cancellable(client, world, db):
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        b = book(client, h, world["am_slots"][0], pid)
        p = client.get(f"/api/v1/appointments/{b['id']}/cancel-preview", headers=h).json()
        assert (p["paid"], p["refund"], p["cancellable"]) == (0, 0, True)  # unpaid: nothing to refund
        pay_via_sandbox(client, h, b["id"])
    with time_machine.travel(f.local_dt(2026, 12, 1, 15, 0), tick=False):
        p = client.get(f"/api/v1/appointments/{b['id']}/cancel-preview", headers=h).json()
        assert p["cancellable"] is False and "15:00" in p["reason"]
        assert client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h).status_code == 409
    ledger_ok(db)


def test_stopped_session_refunds_in_full(client, world, db, frozen):
    from guahao.billing.service import refund_stopped_booking

    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    with db.transaction() as s:  # what the stop-session flow does, then calls us
        s.get(Booking, b["id"]).status = "stopped"
        assert refund_stopped_booking(s, NOW, b["id"], provider(client)) == 5000
    with db.transaction() as s:
        assert refund_stopped_booking(s, NOW, b["id"], provider(client)) == 0  # twice changes nothing
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained) == (5000, 5000, 0)


def test_refund_failure_is_retried(client, world, db, frozen):
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    provider(client).fail_refunds = 1
    assert client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h).status_code == 200
    got = client.get(f"/api/v1/appointments/{b['id']}/billing", headers=h).json()
    assert [(r["status"], r["attempts"]) for r in got["refunds"]] == [("failed", 1)]
    rep = ledger_ok(db)  # owed to the patient: counted as refunded, reported pending
    assert (rep.refunded, rep.refunds_pending) == (5000, 5000)
    admin = staff_headers(client, world, "admin")
    assert client.post("/api/v1/staff/refunds/retry", headers=admin).json() == {"succeeded": 1, "failed": 0}
    got = client.get(f"/api/v1/appointments/{b['id']}/billing", headers=h).json()
    assert [(r["status"], r["attempts"]) for r in got["refunds"]] == [("succeeded", 2)]
    assert ledger_ok(db).refunds_pending == 0


def test_order_bills_split_and_paid_together(client, db, frozen):
    w = make_world(db, prepay=False)
    h, pid, _ = f.signup(client)
    b = book(client, h, w["am_slots"][0], pid, insurance="local")
    sp = book(client, h, w["special_slots"][0], pid, insurance="local")
    doctor = staff_headers(client, w, "doctor")
    it = w["items"]
    r = client.post("/api/v1/staff/bills", headers=doctor, json=dict(booking_id=b["id"], items=[
        dict(price_item_id=it["CT-HEAD"]), dict(price_item_id=it["DRUG-A"], quantity=3),
        dict(price_item_id=it["VIP-CARE"])]))
    assert r.status_code == 201, r.text
    bill1 = r.json()
    # CT 300.00 at 80% → 240.00 insured; drug 3 × 19.99 = 59.97 at 70% → 41.97 (rounded down); 特需 self-pay.
    assert [(i["amount"], i["insurance_amount"], i["self_amount"]) for i in bill1["items"]] == [
        (30000, 24000, 6000), (5997, 4197, 1800), (10000, 0, 10000)]
    assert (bill1["total"], bill1["insurance_amount"], bill1["self_amount"]) == (45997, 28197, 17800)
    r = client.post("/api/v1/staff/bills", headers=doctor, json=dict(booking_id=sp["id"], items=[
        dict(price_item_id=it["BLOOD"])]))
    bill2 = r.json()
    assert (bill2["insurance_amount"], bill2["self_amount"]) == (2000, 500)
    unpaid = client.get("/api/v1/bills?status=unpaid", headers=h).json()
    assert sorted(x["id"] for x in unpaid) == sorted([bill1["id"], bill2["id"]])
    r = client.post("/api/v1/payments", headers=h, json={"bill_ids": [bill1["id"], bill2["id"]]})
    assert r.status_code == 201 and r.json()["amount"] == 18300
    client.post(f"{r.json()['pay_url']}/confirm", data={"action": "pay"})
    assert client.get("/api/v1/bills?status=unpaid", headers=h).json() == []
    r = client.post("/api/v1/payments", headers=h, json={"bill_ids": [bill1["id"]]})
    assert r.json()["error"]["code"] == "ALREADY_PAID"
    s = client.get(f"/api/v1/billing/summary?patient_id={pid}&year=2026", headers=h).json()
    dec = s["months"][11]
    assert (dec["total"], dec["insurance_paid"], dec["self_paid"]) == (48497, 30197, 18300)
    assert (s["insurance_paid"], s["self_paid"], s["net_self_paid"]) == (30197, 18300, 18300)
    # A doctor bills only their own patients; other accounts see nothing.
    other = make_world(db)
    od = staff_headers(client, other, "doctor")
    r = client.post("/api/v1/staff/bills", headers=od, json=dict(booking_id=b["id"], items=[
        dict(price_item_id=it["BLOOD"])]))
    assert r.status_code == 404
    h2, p2, _ = f.signup(client)
    assert client.get(f"/api/v1/billing/summary?patient_id={pid}", headers=h2).status_code == 404
    # An id beyond the database's integers is the client's mistake (found by the OpenAPI fuzzer: it was a 500).
    r = client.get("/api/v1/billing/summary?patient_id=9223372036854775808", headers=h2)
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    ledger_ok(db)


def test_special_registration_never_insured(client, db, frozen):
    from guahao.billing.models import PriceItem

    w = make_world(db, prepay=True)
    with db.transaction() as s:
        s.add(PriceItem(hospital_id=w["h"], code="REG-特需号", name="特需挂号", category="registration",
                        unit_price=30000, local_pct=90, non_local_pct=90))
        s.add(PriceItem(hospital_id=w["h"], code="REG-专家号", name="专家挂号", category="registration",
                        unit_price=5000, local_pct=80, non_local_pct=0))
    h, pid, _ = f.signup(client)
    sp = book(client, h, w["special_slots"][0], pid, insurance="local")
    ex = book(client, h, w["am_slots"][1], pid, insurance="local")
    bills = {x["booking_id"]: x for x in client.get("/api/v1/bills?status=unpaid", headers=h).json()}
    assert (bills[sp["id"]]["insurance_amount"], bills[sp["id"]]["self_amount"]) == (0, 30000)
    assert (bills[ex["id"]]["insurance_amount"], bills[ex["id"]]["self_amount"]) == (4000, 1000)
    assert client.post(f"/api/v1/appointments/{ex['id']}/pay", headers=h).json()["amount"] == 1000


def test_receipts_html_and_pdf(client, world, frozen, db):
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h)
    token = h["Authorization"].split()[1]
    client.cookies.set("access_token", token)
    try:
        rec = client.get("/api/v1/receipts", headers=h).json()
        assert sorted((x["kind"], x["amount"]) for x in rec) == [("payment", 5000), ("refund", 5000)]
        for x in rec:
            page = client.get(x["html_url"])
            assert page.status_code == 200 and x["number"] in page.text and "¥50.00" in page.text
            pdf = client.get(x["pdf_url"])
            assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
            assert pdf.content.startswith(b"%PDF") and b"STSong-Light" in pdf.content
        h2, _, _ = f.signup(client)
        client.cookies.set("access_token", h2["Authorization"].split()[1])
        assert client.get(rec[0]["html_url"]).status_code == 404
    finally:
        client.cookies.clear()


def test_reschedule_carries_the_payment(client, world, frozen, db):
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    r = client.post(f"/api/v1/appointments/{b['id']}/reschedule", headers=h, json={"slot_id": world["pm_slots"][0]})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "booked"
    got = client.get(f"/api/v1/appointments/{r.json()['id']}/billing", headers=h).json()
    assert got["bill"]["status"] == "paid" and got["bill"]["paid_amount"] == 5000
    ledger_ok(db)


def test_clerk_cancels_on_behalf_with_refund_and_audit(client, world, frozen, db):
    from guahao.audit.models import AuditEntry

    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    clerk = staff_headers(client, world, "clerk")
    r = client.post(f"/api/v1/staff/appointments/{b['id']}/cancel", headers=clerk)
    assert r.status_code == 200 and (r.json()["status"], r.json()["refund"]) == ("cancelled", 5000)
    with db.reading() as s:
        actions = set(s.scalars(select(AuditEntry.action)).all())
    assert {"booking.cancel_on_behalf", "refund.request"} <= actions
    ledger_ok(db)


def test_ledger_cli(client, world, frozen, db, monkeypatch):
    from typer.testing import CliRunner

    from guahao import cli

    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    monkeypatch.setattr(cli, "_database", lambda: db)
    res = CliRunner().invoke(cli.app, ["ledger", "check"])
    assert res.exit_code == 0 and "ledger balanced" in res.output and "¥50.00" in res.output
    with db.transaction() as s:  # corrupt it: the check must notice
        s.execute(Payment.__table__.update().values(refunded_amount=1))
    res = CliRunner().invoke(cli.app, ["ledger", "check"])
    assert res.exit_code == 1
    res = CliRunner().invoke(cli.app, ["billing", "expire"])
    assert res.exit_code == 0 and "expired" in res.output


def test_lost_callback_is_found_by_the_ledger_and_reconciled(client, world, frozen, db):
    from guahao.billing import ledger
    from guahao.billing.service import reconcile

    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h).json()
    with db.transaction() as s:
        assert provider(client).pay(s, NOW, pay["out_trade_no"]) is not None  # paid; the callback is lost
    with db.reading() as s:
        assert any("never credited" in p for p in ledger.check(s).problems)
    with db.transaction() as s:
        assert reconcile(s, NOW, provider(client)) == 1
    with db.transaction() as s:
        assert reconcile(s, NOW, provider(client)) == 0
    assert client.get(f"/api/v1/appointments/{b['id']}", headers=h).json()["status"] == "booked"
    ledger_ok(db)


def test_demo_price_tables_and_prepay_cli(db, monkeypatch):
    from typer.testing import CliRunner

    from guahao import cli
    from guahao.billing.models import PriceItem
    from guahao.catalog.models import Hospital

    with db.transaction() as s:
        hid = f.hospital(s).id
    monkeypatch.setattr(cli, "_database", lambda: db)
    assert "1 hospital" in CliRunner().invoke(cli.app, ["billing", "seed-prices"]).output
    assert "0 hospital" in CliRunner().invoke(cli.app, ["billing", "seed-prices"]).output
    assert CliRunner().invoke(cli.app, ["billing", "settings", str(hid), "--prepay"]).exit_code == 0
    with db.reading() as s:
        assert s.get(Hospital, hid).requires_prepayment is True
        assert len(s.scalars(select(PriceItem).where(PriceItem.hospital_id == hid)).all()) == 8


def test_parallel_duplicate_callbacks_credit_once(client, world, frozen, db):
    import threading

    from guahao.billing.service import handle_callback

    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h).json()
    with db.transaction() as s:
        note = provider(client).pay(s, NOW, pay["out_trade_no"])
    outcomes, barrier = [], threading.Barrier(4)

    def deliver():
        barrier.wait()
        with db.transaction() as s:
            outcomes.append(handle_callback(s, NOW, provider(client), dict(note))[1])

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes) == ["credited", "duplicate", "duplicate", "duplicate"]
    rep = ledger_ok(db)
    assert (rep.paid, rep.retained) == (5000, 5000)


def test_hospital_admin_sets_prepayment_tiers_and_prices(client, db):
    w = make_world(db, prepay=False)
    admin = staff_headers(client, w, "admin")
    clerk = staff_headers(client, w, "clerk")
    with time_machine.travel(NOW, tick=False):
        body = dict(requires_prepayment=True, day_before_keep_pct=0, same_day_min_minutes=120,
                    same_day_keep_pct=20, late_keep_pct=100)
        assert client.put("/api/v1/staff/hospital/billing-settings", headers=clerk, json=body).status_code == 403
        r = client.put("/api/v1/staff/hospital/billing-settings", headers=admin, json=body)
        assert r.status_code == 200 and r.json()["refund_policy"]["same_day_keep_pct"] == 20
        r = client.post("/api/v1/staff/price-items", headers=admin, json=dict(
            code="US-ABD", name="腹部B超", category="exam", unit_price=15000, local_pct=80, non_local_pct=60))
        assert r.status_code == 201
        r = client.post("/api/v1/staff/price-items", headers=admin, json=dict(
            code="US-ABD", name="腹部B超", category="exam", unit_price=15000))
        assert r.status_code == 422
        assert "US-ABD" in [x["code"] for x in client.get("/api/v1/staff/price-items", headers=clerk).json()]
        hp, pid, _ = f.signup(client)
        b = book(client, hp, w["am_slots"][0], pid)
        assert b["status"] == "pending_payment"
        pay_via_sandbox(client, hp, b["id"])
    set_hospital(db, w["h"], cancel_minutes_before=0)
    with time_machine.travel(f.local_dt(2026, 12, 2, 6, 0), tick=False):  # 2 h before 08:00: keeps 20%
        p = client.get(f"/api/v1/appointments/{b['id']}/cancel-preview", headers=hp).json()
        assert (p["refund"], p["kept"]) == (4000, 1000)


def test_pages_answer_without_errors(client, world, frozen):
    assert client.get("/billing/bills", follow_redirects=False).status_code == 303  # not logged in
    assert client.get("/visits/1", follow_redirects=False).headers["location"].startswith("/login")
    r = client.get("/console/checkin", follow_redirects=False)  # staff page: to the console login
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    client.cookies.set("access_token", h["Authorization"].split()[1])
    try:
        for url in (f"/visits/{b['id']}", f"/billing/pay/{b['id']}", f"/billing/cancel/{b['id']}",
                    "/billing/bills", "/billing/receipts", f"/visits/{b['id']}/status"):
            assert client.get(url).status_code == 200, url
        assert client.get("/visits/99999").status_code == 404
        assert client.get("/billing/receipts/payment/99999").status_code == 404
        assert client.get("/billing/receipts/bogus/1.pdf").status_code == 404
        assert client.get("/sandbox/pay/NOPE").status_code == 404
        r = client.post(f"/visits/{b['id']}/check-in")  # unpaid: the page says why
        assert r.status_code == 409 and "请先支付挂号费" in r.text
        r = client.post("/billing/bills/pay", data={})
        assert r.status_code == 409
    finally:
        client.cookies.clear()


def test_window_cancel_on_the_visit_day_keeps_the_tier(client, world, db):
    """Online cancel closed at 15:00 the day before; at the window the tiers still decide the refund."""
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        b = book(client, h, world["am_slots"][0], pid)
        pay_via_sandbox(client, h, b["id"])
    clerk = staff_headers(client, world, "clerk", at=f.local_dt(2026, 12, 2, 6, 0))
    with time_machine.travel(f.local_dt(2026, 12, 2, 6, 30), tick=False):
        assert client.post(f"/api/v1/appointments/{b['id']}/cancel", headers=h).status_code == 409
        r = client.post(f"/api/v1/staff/appointments/{b['id']}/cancel", headers=clerk)
        assert r.status_code == 200 and (r.json()["refund"], r.json()["kept"]) == (4500, 500)
        assert client.post(f"/api/v1/staff/appointments/{b['id']}/cancel", headers=clerk).status_code == 409
    rep = ledger_ok(db)
    assert (rep.refunded, rep.retained) == (4500, 500)


def test_sandbox_refuses_payment_past_the_orders_expiry(client, world, db):
    with time_machine.travel(NOW, tick=False):
        h, pid, _ = f.signup(client)
        b = book(client, h, world["am_slots"][0], pid)
        pay = client.post(f"/api/v1/appointments/{b['id']}/pay", headers=h).json()
    # 15 min later, before any expiry job ran: the provider closes the order instead of taking money.
    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        r = client.post(f"{pay['pay_url']}/confirm", data={"action": "pay"}, follow_redirects=False)
        assert r.status_code == 409 and "已关闭" in r.text
        assert client.get(f"/api/v1/appointments/{b['id']}", headers=h).json()["status"] == "pending_payment"
    ledger_ok(db)


# --- a refund's provider call runs after the transaction that records it has committed (billing/outbox.py):
# never for a transaction that rolls back; one never sent is sent by the retry once it is stale.

class Spy:
    """The sandbox provider, noting for each refund call whether its refund was committed at that moment."""

    def __init__(self, real, db):
        self.real, self.db, self.calls = real, db, []

    def refund(self, s, now, out_trade_no, out_refund_no, amount):
        with self.db.reading() as other:  # another connection sees only what was committed
            seen = other.scalar(select(Refund.status).where(Refund.out_refund_no == out_refund_no))
        self.calls.append((out_refund_no, seen))
        self.real.refund(s, now, out_trade_no, out_refund_no, amount)


@pytest.fixture
def paid(client, world, db, frozen):
    """A prepaid booking, paid: (booking id, account id)."""
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    with db.reading() as s:
        return b["id"], s.get(Booking, b["id"]).account_id


def test_a_refund_is_sent_after_its_transaction_commits(client, db, paid):
    booking_id, account_id = paid
    spy = Spy(client.app.state.payment_provider, db)
    with db.transaction() as s:
        cancel_booking(s, NOW, account_id, booking_id, spy)
        assert spy.calls == []  # not while the cancel's transaction is open
    with db.reading() as s:
        r = s.scalar(select(Refund))
        assert (r.status, r.attempts, r.amount) == ("succeeded", 1, 5000)
        assert s.scalar(select(SandboxRefund.amount).where(SandboxRefund.out_refund_no == r.out_refund_no)) == 5000
    assert spy.calls == [(r.out_refund_no, "requested")]  # its number was committed before the call
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained, rep.refunds_pending) == (5000, 5000, 0, 0)


def test_a_refund_whose_transaction_rolls_back_is_never_sent(client, db, paid):
    booking_id, account_id = paid
    spy = Spy(client.app.state.payment_provider, db)
    with pytest.raises(RuntimeError):
        with db.transaction() as s:
            cancel_booking(s, NOW, account_id, booking_id, spy)
            raise RuntimeError("a later step of the same unit of work fails")
    assert spy.calls == []
    with db.reading() as s:
        assert s.scalar(select(Refund)) is None and s.scalar(select(SandboxRefund)) is None
        assert s.get(Booking, booking_id).status == "booked"
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained) == (5000, 0, 5000)


def test_a_refund_never_sent_is_sent_by_the_retry_once_stale(client, db, paid, monkeypatch):
    booking_id, account_id = paid
    provider = client.app.state.payment_provider
    with monkeypatch.context() as m:  # the process stops between the commit and the provider call
        m.setattr(outbox, "send_after_commit", lambda *a: None)
        with db.transaction() as s:
            cancel_booking(s, NOW, account_id, booking_id, provider)
    with db.reading() as s:
        assert s.scalar(select(Refund.status)) == "requested"
    assert ledger_ok(db).refunds_pending == 5000
    with db.transaction() as s:  # fresh: it may be on its way; the retry leaves it
        assert retry_refunds(s, NOW + UNSENT_AFTER - timedelta(seconds=1), provider) == (0, 0)
    with db.transaction() as s:
        assert retry_refunds(s, NOW + UNSENT_AFTER + timedelta(seconds=1), provider) == (1, 0)
    with db.transaction() as s:
        assert retry_refunds(s, NOW + 2 * UNSENT_AFTER, provider) == (0, 0)  # settled: not again
    with db.reading() as s:
        assert [(r.status, r.attempts) for r in s.scalars(select(Refund))] == [("succeeded", 1)]
        assert len(s.scalars(select(SandboxRefund)).all()) == 1
    assert ledger_ok(db).refunds_pending == 0


def test_the_worker_retries_a_failed_refund(client, db, paid, monkeypatch):
    """The patient's page promises 退款失败，将自动重试: the worker's job keeps that promise."""
    from guahao.billing import providers
    from guahao.worker.jobs import JOBS, run_job

    booking_id, account_id = paid
    provider = client.app.state.payment_provider
    monkeypatch.setattr(providers, "_default", provider)  # the worker's provider is this process's sandbox
    provider.fail_refunds = 2
    with db.transaction() as s:
        cancel_booking(s, NOW, account_id, booking_id, provider)
    job = next(j for j in JOBS if j.name == "retry_refunds")
    assert run_job(db, job, NOW + timedelta(minutes=5)) == 0  # the provider still fails
    assert run_job(db, job, NOW + timedelta(minutes=10)) == 1
    assert run_job(db, job, NOW + timedelta(minutes=15)) == 0
    with db.reading() as s:
        assert [(r.status, r.attempts) for r in s.scalars(select(Refund))] == [("succeeded", 3)]
    assert ledger_ok(db).refunds_pending == 0

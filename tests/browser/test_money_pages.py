"""Browser tests (Playwright + system Chromium) against a real uvicorn server on a test database:
the patient pays through the sandbox, previews and confirms a cancel, pays bills together, sees receipts,
checks in ("我已到达") and watches the queue update live while the clerk checks in and the doctor calls,
passes and completes. Screenshots go to test-artifacts/."""

import os
import threading
import time
from pathlib import Path

import pytest
import time_machine

from tests import factories as f
from tests.money.helpers import NOW, make_world

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PORT = 8401

if not Path(CHROMIUM).exists():
    if os.environ.get("GUAHAO_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"GUAHAO_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def server(sqlite_db):
    import uvicorn

    from guahao.app import create_app
    from guahao.clock import SystemClock

    app = create_app(db=sqlite_db, clock=SystemClock())
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=PORT, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{PORT}", app
    srv.should_exit = True
    t.join(10)


# `browser` is the session-wide Chromium of tests/browser/conftest.py: one sync Playwright per thread.


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"money-{name}.png"), full_page=True)


def _patients(db, n):
    from sqlalchemy import select

    from guahao.accounts import service as accounts
    from guahao.accounts.models import Patient
    from guahao.accounts.security import issue_token

    out = []
    with db.transaction() as s:
        for i in range(n):
            accounts.register(s, NOW, f.phone(), "secret123", ["王小明", "李四", "赵敏"][i], f.id_number())
    with db.reading() as s:
        for p in s.scalars(select(Patient).order_by(Patient.id)):
            out.append((p.account_id, p.id, issue_token(str(p.account_id), "account", NOW)))
    return out


def _staff_token(db, username):
    from sqlalchemy import select

    from guahao.accounts.security import issue_token
    from guahao.staff.models import StaffUser

    with db.reading() as s:
        u = s.scalar(select(StaffUser).where(StaffUser.username == username))
    return issue_token(str(u.id), "staff", NOW, {"usr": u.username, "role": u.role, "hid": u.hospital_id,
                                                 "did": u.doctor_id})


def _pay(app, db, account_id, booking_id):
    from guahao.billing import service
    from guahao.billing.deps import get_provider

    provider = get_provider(type("R", (), {"app": app})())
    with db.transaction() as s:
        pay, _ = service.pay_booking(s, NOW, provider, account_id, booking_id)
        note = provider.pay(s, NOW, pay.out_trade_no)
    with db.transaction() as s:
        assert service.handle_callback(s, NOW, provider, note) == (True, "credited")


def test_patient_pays_cancels_pays_bills_and_staff_run_the_queue(server, browser, sqlite_db):
    from guahao.billing.service import OrderLine, create_order_bill
    from guahao.booking import service as booking
    from guahao.staff.service import Staff

    base, app = server
    db = sqlite_db
    with time_machine.travel(NOW, tick=True) as traveller:
        w = make_world(db, prepay=True)
        (a1, p1, t1), (a2, p2, t2), (a3, p3, t3) = _patients(db, 3)
        with db.transaction() as s:
            b1 = booking.book(s, NOW, a1, w["am_slots"][0], p1, "local")
            b2 = booking.book(s, NOW, a1, w["special_slots"][0], p1, "local")
            b3 = booking.book(s, NOW, a2, w["am_slots"][1], p2, "self_pay")
        _pay(app, db, a2, b3)

        ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        ctx.add_cookies([{"name": "access_token", "value": t1, "url": base}])
        page = ctx.new_page()

        # Pay the prepaid booking through the sandbox payer page.
        page.goto(f"{base}/billing/pay/{b1}")
        assert page.get_by_test_id("amount").inner_text() == "¥50.00"
        shot(page, "1-pay")
        page.get_by_test_id("pay").click()
        page.wait_for_url("**/sandbox/pay/**")
        assert page.get_by_test_id("sandbox-amount").inner_text() == "50.00"
        shot(page, "2-sandbox")
        page.get_by_test_id("sandbox-pay").click()
        page.wait_for_url("**/billing/paid**")
        assert "预约成功" in page.get_by_test_id("result").inner_text()
        shot(page, "3-paid")

        # Pay the second one, then cancel it: the preview shows the full refund before confirming.
        page.goto(f"{base}/billing/pay/{b2}")
        page.get_by_test_id("pay").click()
        page.get_by_test_id("sandbox-pay").click()
        page.wait_for_url("**/billing/paid**")
        page.goto(f"{base}/billing/cancel/{b2}")
        assert page.get_by_test_id("refund").inner_text() == "¥300.00"  # 特需号, the day before: full
        shot(page, "4-cancel-preview")
        page.get_by_test_id("confirm-cancel").click()
        assert "退款 ¥300.00" in page.get_by_test_id("cancelled").inner_text()
        shot(page, "5-cancelled")

        # The doctor's orders arrive as bills; both paid together in one payment.
        doc_staff = Staff(0, "doctor", "doctor", w["h"], w["doc"])
        with db.transaction() as s:
            create_order_bill(s, NOW, doc_staff, b1, [OrderLine(w["items"]["CT-HEAD"])])
            create_order_bill(s, NOW, doc_staff, b1, [OrderLine(w["items"]["DRUG-A"], 2)])
        page.goto(f"{base}/billing/bills")
        assert page.get_by_test_id("total").inner_text() == "¥72.00"  # 60.00 + 12.00 self-pay
        shot(page, "6-bills")
        page.get_by_test_id("pay-together").click()
        page.get_by_test_id("sandbox-pay").click()
        page.wait_for_url("**/billing/bills")
        assert page.get_by_test_id("no-bills").is_visible()
        page.goto(f"{base}/billing/receipts")
        assert page.get_by_test_id("receipt").count() == 4  # 3 payments + 1 refund of this account
        shot(page, "7-receipts")

        # Visit day. Patient 1 says "我已到达"; the clerk checks patient 2 in at the window.
        traveller.move_to(f.local_dt(2026, 12, 2, 7, 40))
        page.goto(f"{base}/visits/{b1}")
        page.get_by_test_id("arrived").click()
        assert page.get_by_test_id("ahead").inner_text() == "0"
        shot(page, "8-queue-waiting")

        from sqlalchemy import select

        from guahao.booking.models import Booking
        with db.reading() as s:
            serial3 = s.scalar(select(Booking.serial_number).where(Booking.id == b3))
        staff_ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        staff_ctx.add_cookies([{"name": "staff_token", "value": _staff_token(db, f"clerk{w['h']}"), "url": base}])
        desk = staff_ctx.new_page()
        desk.goto(f"{base}/console/checkin")
        desk.fill("#serial", serial3)
        desk.get_by_role("button", name="查找").click()
        desk.get_by_test_id(f"checkin-{b3}").click()
        assert "报到成功" in desk.inner_text("main")
        shot(desk, "9-clerk-checkin")

        doc_ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        doc_ctx.add_cookies([{"name": "staff_token", "value": _staff_token(db, f"doctor{w['h']}"), "url": base}])
        doc = doc_ctx.new_page()
        traveller.move_to(f.local_dt(2026, 12, 2, 8, 0))
        doc.goto(f"{base}/console/queue")
        doc.get_by_test_id(f"session-{w['am']}").click()
        doc.get_by_test_id("call-next").click()
        assert "1号" in doc.get_by_test_id("calling").inner_text()
        # The patient's page polls and shows the call without a reload.
        page.get_by_test_id("my-turn").wait_for(timeout=10_000)
        shot(page, "10-my-turn")
        # Patient 1 is not there: passed; patient 2 is called; patient 1 is back right after (fewer than 3 wait).
        doc.get_by_test_id("pass").click()
        doc.get_by_test_id("call-next").click()
        assert "2号" in doc.get_by_test_id("calling").inner_text()
        doc.get_by_test_id("complete").click()
        doc.get_by_test_id("call-next").click()
        assert "1号" in doc.get_by_test_id("calling").inner_text()
        # The doctor orders a blood test for patient 1 (local insurance: 80% covered).
        doc.get_by_label("血常规").check()
        doc.get_by_test_id("create-bill").click()
        assert "自付 5.00 元" in doc.inner_text("main")
        shot(doc, "11-doctor-queue")
        doc.get_by_test_id("complete").click()
        doc.get_by_test_id("call-next").click()
        assert "当前没有候诊患者" in doc.inner_text("main")
        page.wait_for_function("document.querySelector('[data-testid=status-label]').innerText === '已就诊'",
                               timeout=10_000)
        shot(page, "12-done")
        page.goto(f"{base}/billing/bills")
        assert page.get_by_test_id("total").inner_text() == "¥5.00"
        for c in (ctx, staff_ctx, doc_ctx):
            c.close()

    from tests.money.helpers import ledger_ok
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained) == (47200, 30000, 17200)

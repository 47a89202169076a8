"""The staff console in a desktop browser: hospital scoping, the clerk's booking search, admin pages."""

from datetime import timedelta

import pytest
try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixtures skip, or fail when GUAHAO_REQUIRE_BROWSER=1
    expect = None
from sqlalchemy import select

from guahao.audit.models import AuditEntry
from guahao.booking import service as booking
from guahao.accounts import service as accounts
from tests import factories as f


pytestmark = pytest.mark.browser

def _book(live_server, name: str, day_offset: int = 2) -> tuple[str, str]:
    """A booking at hospital A made through the services; returns (serial, id number)."""
    w, now = live_server.world, live_server.clock.now()
    id_no = f.id_number()
    with live_server.db.transaction() as s:
        acc = accounts.register(s, now, f.phone(), "secret123", name, id_no)
        from guahao.accounts.models import Patient
        from guahao.schedule.models import Slot

        pid = s.scalar(select(Patient.id).where(Patient.account_id == acc.id))
        sid = w["sessions"][("heart", w["today"] + timedelta(days=day_offset))]
        slot = s.scalar(select(Slot.id).where(Slot.session_id == sid).order_by(Slot.seq.desc()).limit(1))
        bid = booking.book(s, now, acc.id, slot, pid, "local")
        serial = booking.get_view(s, acc.id, bid).Booking.serial_number
    return serial, id_no


def test_staff_of_hospital_a_cannot_open_hospital_b(desktop_page, live_server, shot, login_staff):
    page, url, w = desktop_page, live_server.url, live_server.world
    login_staff(page, "a-admin")
    assert page.url.endswith(f"/console/hospitals/{w['a']}")
    expect(page.get_by_role("heading", name="北京市示范医院")).to_be_visible()
    shot(page, "console-01-hospital-admin")

    for path in (f"/console/hospitals/{w['b']}", f"/console/hospitals/{w['b']}/departments",
                 f"/console/hospitals/{w['b']}/doctors", f"/console/hospitals/{w['b']}/sessions"):
        response = page.goto(url + path)
        assert response.status == 404, path
        expect(page.get_by_role("heading", name="页面不存在")).to_be_visible()
        expect(page.get_by_text("北京第二示范医院")).to_have_count(0)
    shot(page, "console-02-other-hospital-404")

    # A clerk of hospital B neither finds nor opens hospital A's bookings.
    serial, _ = _book(live_server, "赵敏")
    page.goto(f"{url}/console/hospitals/{w['a']}")
    page.get_by_role("button", name="退出").click()
    login_staff(page, "b-clerk")
    page.goto(f"{url}/console/bookings?serial={serial}")
    expect(page.get_by_test_id("error")).to_have_text("没有找到符合条件的预约")
    with live_server.db.reading() as s:
        from guahao.booking.models import Booking

        bid = s.scalar(select(Booking.id).where(Booking.serial_number == serial))
    assert page.goto(f"{url}/console/bookings/{bid}").status == 404
    assert page.request.post(f"{url}/console/bookings/{bid}/cancel",
                             form={"csrf_token": "x"}).status in (403, 404)


def test_clerk_finds_booking_by_name_and_id_digits_and_cancels(desktop_page, live_server, shot, login_staff):
    page = desktop_page
    serial, id_no = _book(live_server, "孙丽", day_offset=4)
    login_staff(page, "a-clerk")
    page.fill("#name", "孙丽")
    page.fill("#last4", id_no[-4:])
    page.get_by_role("button", name="查询").click()
    row = page.get_by_test_id("booking-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(serial)
    expect(row).to_contain_text(id_no[:6] + "********" + id_no[-4:])
    shot(page, "console-03-clerk-search")
    row.get_by_role("link", name="详情").click()
    expect(page.get_by_test_id("check-in")).to_be_visible()
    page.get_by_test_id("cancel").click()
    expect(page.get_by_test_id("status")).to_have_text("已取消")
    shot(page, "console-04-clerk-cancelled")
    with live_server.db.reading() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.actor_id == "a-clerk")))
    assert "booking.cancel_on_behalf" in actions


def test_admin_stops_session_and_doctor_sees_today(desktop_page, live_server, shot, login_staff):
    page, url, w = desktop_page, live_server.url, live_server.world
    day = w["today"] + timedelta(days=6)
    _book(live_server, "钱多", day_offset=6)
    login_staff(page, "a-admin")
    page.goto(f"{url}/console/hospitals/{w['a']}/sessions?day={day.isoformat()}")
    row = page.locator("tr").filter(has_text="王建国")
    expect(row).to_contain_text("1/10")
    row.get_by_role("button", name="停诊").click()
    row = page.locator("tr").filter(has_text="王建国")
    expect(row).to_contain_text("已停诊")
    expect(row).to_contain_text("0/10")
    shot(page, "console-05-sessions-stopped")
    page.get_by_role("button", name="退出").click()
    login_staff(page, "a-doctor")
    expect(page.get_by_role("heading", name="今日出诊")).to_contain_text("林慧")
    expect(page.get_by_role("link", name="叫号队列")).to_have_attribute("href", f"/console/queue/{w['sessions'][('chief', w['today'])]}")
    shot(page, "console-06-doctor-today")

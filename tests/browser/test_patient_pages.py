"""A family books on a phone: sign up, add a child, find a flagship department, book, see the slip,
reschedule and cancel; a limit error is shown in Chinese next to the booking button."""

import re
from datetime import date, timedelta

import pytest
try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixtures skip, or fail when GUAHAO_REQUIRE_BROWSER=1
    expect = None

from tests import factories as f


pytestmark = pytest.mark.browser

def test_newcomer_finds_flagship_signs_up_adds_child_books_reschedules_cancels(phone_page, live_server, shot):
    page, url, w = phone_page, live_server.url, live_server.world
    page.goto(url + "/")
    expect(page.get_by_role("heading", name="预约挂号，一站到院")).to_be_visible()
    shot(page, "patient-01-home")

    # Find the hospital by its flagship department, then the department from the hospital page.
    page.fill("input[name=department]", "小儿内科")
    page.get_by_role("button", name="搜索").click()
    card = page.get_by_test_id("hospital").filter(has_text="北京市示范医院")
    expect(card).to_contain_text("小儿内科")
    expect(page.get_by_test_id("hospital")).to_have_count(1)
    card.click()
    expect(page.get_by_test_id("release-time")).to_have_text("每日 07:00")
    expect(page.get_by_text("就诊前一日 15:00 前可在线取消")).to_be_visible()
    shot(page, "patient-02-hospital")
    page.get_by_test_id("flagship").filter(has_text="小儿内科").click()
    expect(page.get_by_role("heading", name=re.compile("小儿内科"))).to_be_visible()

    # The last date of the strip is not released yet: 即将放号 with the release instant.
    last = (w["today"] + timedelta(days=8)).isoformat()
    page.locator(f'.day[data-date="{last}"]').click()
    expect(page.get_by_test_id("soon").first).to_contain_text("即将放号")
    expect(page.get_by_test_id("soon").first).to_contain_text("2026-12-02 07:00")
    shot(page, "patient-03-not-released")

    day = (w["today"] + timedelta(days=1)).isoformat()
    page.locator(f'.day[data-date="{day}"]').click()
    chief = page.get_by_test_id("session").filter(has_text="林慧")
    expect(chief).to_contain_text("专家号")
    expect(chief).to_contain_text("¥80.00")
    expect(chief).to_contain_text("余号 3")
    expect(chief.get_by_test_id("tight")).to_have_text("号源紧张")
    shot(page, "patient-04-department")
    chief.get_by_test_id("book").click()

    # Not signed in: log in or sign up, then come back to the same booking.
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    page.get_by_role("link", name="立即注册").click()
    page.fill("#phone", f.phone())
    page.fill("#password", "secret123")
    page.fill("#name", "王明")
    page.fill("#id_number", f.id_number(date(1988, 3, 9)))
    page.get_by_role("button", name="注册并登录").click()
    expect(page.get_by_role("heading", name="确认预约信息")).to_be_visible()

    page.get_by_role("link", name="+ 添加就诊人").click()
    page.fill("#p-name", "王小宝")
    page.fill("#p-id", f.id_number(date(2019, 6, 1)))
    page.fill("#p-phone", "13912345678")
    page.select_option("#p-rel", "子女")
    page.select_option("#p-ins", "local")
    shot(page, "patient-05-add-child")
    page.get_by_role("button", name="添加就诊人").click()
    expect(page.get_by_role("heading", name="确认预约信息")).to_be_visible()

    # Confirm: choose the child (whose insurance type is preselected), see fee and the cancel deadline.
    page.get_by_label(re.compile("王小宝")).check()
    expect(page.get_by_label("北京医保")).to_be_checked()
    expect(page.get_by_test_id("fee")).to_have_text("¥80.00")
    expect(page.get_by_test_id("deadline")).to_have_text("2026-12-01 15:00")
    shot(page, "patient-06-confirm")
    page.get_by_role("button", name=re.compile("确认预约")).click()

    slip = page.get_by_test_id("slip")
    expect(page.get_by_test_id("booked")).to_be_visible()
    expect(slip).to_contain_text("北京市示范医院")
    expect(slip).to_contain_text("小儿内科")
    expect(slip).to_contain_text("林慧")
    expect(slip).to_contain_text("王小宝")
    expect(slip).to_contain_text("上午 08:00–")
    expect(slip).to_contain_text("门诊楼3层儿科分诊台")
    expect(page.get_by_test_id("seq")).to_have_text("1")
    serial = page.get_by_test_id("serial").inner_text()
    assert re.fullmatch(r"\d{16}", serial)
    expect(slip.locator(".qr svg")).to_be_visible()
    shot(page, "patient-07-slip")

    # Reschedule to the same doctor's next day.
    page.get_by_role("link", name="改约").click()
    option = page.locator("form.session").filter(has_text=(w["today"] + timedelta(days=2)).strftime("%-m月%-d日"))
    option.get_by_role("button", name="改到此号").click()
    expect(page.get_by_text("改约成功")).to_be_visible()
    expect(page.get_by_test_id("slip")).to_contain_text((w["today"] + timedelta(days=2)).strftime("%-m月%-d日"))
    new_serial = page.get_by_test_id("serial").inner_text()
    assert new_serial != serial

    page.get_by_role("link", name="我的预约").first.click()
    expect(page.get_by_test_id("appointment")).to_have_count(2)  # the new one upcoming, the old one 已改约
    expect(page.locator(".appt").filter(has_text="已改约")).to_have_count(1)
    shot(page, "patient-08-appointments")

    page.get_by_role("link", name="就诊人").last.click()
    child = page.get_by_test_id("patient").filter(has_text="王小宝")
    expect(child).to_contain_text("子女")
    expect(child).to_contain_text(re.compile(r"110105\*{8}\d{3}[\dX]"))  # masked ID (A6)
    expect(child).to_contain_text("北京医保")
    expect(child).to_contain_text("139****5678")
    shot(page, "patient-09-patients")

    page.goto(url + "/appointments")
    page.get_by_test_id("appointment").filter(has_text="已预约").click()
    page.get_by_role("button", name="取消预约").click()
    expect(page.get_by_test_id("status")).to_have_text("已取消")
    expect(page.get_by_text("已取消预约，号源已释放")).to_be_visible()
    expect(page.locator(".qr svg")).to_have_count(0)  # a void slip offers no check-in code
    shot(page, "patient-10-cancelled")


def test_limit_error_shown_in_chinese(phone_page, live_server, shot, signup_patient):
    page, url, w = phone_page, live_server.url, live_server.world
    signup_patient(page, name="李华")
    day = w["today"] + timedelta(days=3)
    page.goto(f"{url}/departments/{w['kids']}?day={day.isoformat()}")
    page.get_by_test_id("session").filter(has_text="林慧").get_by_test_id("book").click()
    page.get_by_role("button", name=re.compile("确认预约")).click()
    expect(page.get_by_test_id("booked")).to_be_visible()

    # Same person, same hospital, department and day (L1): refused, in Chinese, next to the button.
    page.goto(f"{url}/departments/{w['kids']}?day={day.isoformat()}")
    page.get_by_test_id("session").filter(has_text="周晨").get_by_test_id("book").click()
    page.get_by_role("button", name=re.compile("确认预约")).click()
    error = page.get_by_test_id("book-form").get_by_test_id("error")
    expect(error).to_have_text("同一就诊人同一天在同一医院同一科室只能预约一次")
    shot(page, "patient-11-limit-error")
    page.goto(url + "/appointments")
    expect(page.get_by_test_id("appointment")).to_have_count(1)

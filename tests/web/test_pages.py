"""Server-rendered pages without a browser (SQLite and PostgreSQL): forms work without JavaScript,
CSRF and cookies, errors in Chinese, masking, and staff scoped to their own hospital."""

import re
from datetime import date, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from guahao.booking.models import Booking
from guahao.staff.service import create_staff
from tests import factories as f

NOW = f.local_dt(2026, 12, 1, 10, 0)
D1 = date(2026, 12, 2)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as t:
        yield t


@pytest.fixture
def world(db, frozen):
    with db.transaction() as s:
        a, b = f.hospital(s, "甲医院"), f.hospital(s, "乙医院")
        dept = f.department(s, a, "小儿内科")
        dept.is_flagship = True
        doc = f.doctor(s, dept, "林医生")
        cs = f.session(s, doc, D1, capacity=3)
        cs2 = f.session(s, doc, D1 + timedelta(days=1), capacity=3)
        b_dept = f.department(s, b, "消化内科")
        b_doc = f.doctor(s, b_dept, "陈医生")
        b_cs = f.session(s, b_doc, D1)
        for username, role, hid, did in [("a-admin", "hospital_admin", a.id, None), ("a-clerk", "clerk", a.id, None),
                                         ("b-admin", "hospital_admin", b.id, None)]:
            create_staff(s, NOW, username, "staff1234", role, username, hid, did)
        return dict(a=a.id, b=b.id, dept=dept.id, doc=doc.id, cs=cs.id, cs2=cs2.id, b_cs=b_cs.id,
                    slots=f.slot_ids(s, cs), slots2=f.slot_ids(s, cs2))


def csrf(client, path="/login") -> str:
    client.get(path)
    return client.cookies.get("csrf_token")


def signup(client, id_no=None, name="王明"):
    tok = csrf(client, "/signup")
    ph = f.phone()
    id_no = id_no or f.id_number()
    r = client.post("/signup", data=dict(phone=ph, password="secret123", name=name, id_number=id_no,
                                         csrf_token=tok), follow_redirects=False)
    assert r.status_code == 303, r.text
    return r, id_no


def test_signup_sets_httponly_lax_cookie_and_pages_mask_the_id(client, world):
    r, id_no = signup(client)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("access_token="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    page = client.get("/patients").text
    assert id_no[:6] + "********" + id_no[-4:] in page
    assert id_no not in page


def test_forms_need_the_csrf_token(client, world):
    signup(client)
    r = client.post(f"/sessions/{world['cs']}/book", data=dict(slot_id=world["slots"][0], patient_id=1,
                                                               insurance_type="local", csrf_token="forged"))
    assert r.status_code == 403 and "页面已过期" in r.text
    assert "text/html" in r.headers["content-type"]


def test_book_without_javascript_then_rule_error_in_chinese(client, world, db):
    signup(client)
    page = client.get(f"/sessions/{world['cs']}/book").text
    patient_id = int(re.search(r'name="patient_id" value="(\d+)"', page).group(1))
    tok = client.cookies.get("csrf_token")
    r = client.post(f"/sessions/{world['cs']}/book", follow_redirects=False, data=dict(
        slot_id=world["slots"][1], patient_id=patient_id, insurance_type="local", csrf_token=tok))
    assert r.status_code == 303 and re.fullmatch(r"/appointments/\d+\?booked=1", r.headers["location"])
    slip = client.get(r.headers["location"]).text
    assert "<svg" in slip and "就诊序号" in slip and "门诊楼2层" in slip
    # The same person again in the same department and day (L1): the page says why, nothing is booked.
    r = client.post(f"/sessions/{world['cs']}/book", data=dict(
        slot_id=world["slots"][2], patient_id=patient_id, insurance_type="local", csrf_token=tok))
    assert r.status_code == 409
    assert "同一就诊人同一天在同一医院同一科室只能预约一次" in r.text
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 1


def test_reschedule_and_cancel_through_forms(client, world, db):
    signup(client)
    page = client.get(f"/sessions/{world['cs']}/book").text
    patient_id = int(re.search(r'name="patient_id" value="(\d+)"', page).group(1))
    tok = client.cookies.get("csrf_token")
    loc = client.post(f"/sessions/{world['cs']}/book", follow_redirects=False, data=dict(
        slot_id=world["slots"][0], patient_id=patient_id, insurance_type="self_pay", csrf_token=tok)).headers["location"]
    bid = int(re.search(r"/appointments/(\d+)", loc).group(1))
    options = client.get(f"/appointments/{bid}/reschedule").text
    assert f'value="{world["slots2"][0]}"' in options
    r = client.post(f"/appointments/{bid}/reschedule", follow_redirects=False,
                    data=dict(slot_id=world["slots2"][0], csrf_token=tok))
    new_id = int(re.search(r"/appointments/(\d+)", r.headers["location"]).group(1))
    assert client.post(f"/appointments/{new_id}/cancel", data=dict(csrf_token=tok)).status_code == 200
    with db.reading() as s:
        assert dict(s.execute(select(Booking.id, Booking.status)).all()) == {bid: "rescheduled", new_id: "cancelled"}


def test_signed_out_pages_redirect_to_login_and_api_stays_json(client, world):
    r = client.get("/appointments", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/appointments"
    r = client.get("/console/bookings", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    r = client.get("/api/v1/appointments")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    assert client.get("/no-such-page").status_code == 404
    assert "页面不存在" in client.get("/hospitals/999999").text


def test_login_redirects_only_to_local_paths(client, world):
    tok = csrf(client)
    r = client.post("/login", follow_redirects=False, data=dict(
        phone="13800000000", password="wrong", next="https://evil.example", csrf_token=tok))
    assert r.status_code == 401 and "手机号或密码错误" in r.text
    r = client.post("/console/login", follow_redirects=False, data=dict(
        username="a-admin", password="staff1234", next="//evil.example", csrf_token=tok))
    assert r.status_code == 303 and r.headers["location"] == "/console"


def staff_login(client, username):
    tok = csrf(client, "/console/login")
    r = client.post("/console/login", data=dict(username=username, password="staff1234", csrf_token=tok),
                    follow_redirects=False)
    assert r.status_code == 303
    return tok


def test_staff_see_only_their_own_hospital(client, world, db):
    tok = staff_login(client, "a-admin")
    assert client.get(f"/console/hospitals/{world['a']}").status_code == 200
    for path in (f"/console/hospitals/{world['b']}", f"/console/hospitals/{world['b']}/sessions"):
        assert client.get(path).status_code == 404
    r = client.post(f"/console/sessions/{world['b_cs']}/stop", data=dict(csrf_token=tok))
    assert r.status_code == 404
    r = client.post(f"/console/hospitals/{world['b']}/settings", data=dict(
        csrf_token=tok, release_time="08:00", window_days="7", cancel_deadline_time="15:00",
        checkin_lead_minutes="60", reminder_time="18:00"))
    assert r.status_code == 404
    assert client.get("/console/audit").status_code == 403  # platform admin only


def test_settings_change_is_audited_and_moves_unreleased_sessions(client, world, db):
    from guahao.audit.models import AuditEntry
    from guahao.schedule.models import ClinicSession

    tok = staff_login(client, "a-admin")
    r = client.post(f"/console/hospitals/{world['a']}/settings", follow_redirects=False, data=dict(
        csrf_token=tok, release_time="08:30", window_days="14", cancel_deadline_time="14:00",
        cancel_minutes_before="", checkin_lead_minutes="30", reminder_time="18:00"))
    assert r.status_code == 303
    r = client.post(f"/console/hospitals/{world['a']}/settings", data=dict(
        csrf_token=tok, release_time="08:30", window_days="120", cancel_deadline_time="14:00",
        checkin_lead_minutes="30", reminder_time="18:00"))
    assert r.status_code == 422 and "放号周期应为1–90天" in r.text
    with db.reading() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "hospital.release_settings"))
        assert entry.actor_id == "a-admin" and entry.details["changed"]["window_days"] == ["7", "14"]
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1
        assert all(cs.release_at <= NOW for cs in s.scalars(select(ClinicSession).where(
            ClinicSession.hospital_id == world["a"])))


def test_stop_session_stops_its_bookings_and_clerk_cancels_on_behalf(client, world, db):
    from guahao.audit.models import AuditEntry
    from guahao.schedule.models import ClinicSession

    signup(client)
    page = client.get(f"/sessions/{world['cs']}/book").text
    patient_id = int(re.search(r'name="patient_id" value="(\d+)"', page).group(1))
    tok = client.cookies.get("csrf_token")
    for sid, slot in ((world["cs"], world["slots"][0]), (world["cs2"], world["slots2"][0])):
        client.post(f"/sessions/{sid}/book", data=dict(slot_id=slot, patient_id=patient_id,
                                                       insurance_type="local", csrf_token=tok))
    client.cookies.clear()
    tok = staff_login(client, "a-admin")
    r = client.post(f"/console/sessions/{world['cs']}/stop", data=dict(csrf_token=tok), follow_redirects=False)
    assert r.status_code == 303
    assert "已停诊" in client.get(r.headers["location"]).text
    client.cookies.clear()
    tok = staff_login(client, "a-clerk")
    with db.reading() as s:
        b2 = s.scalar(select(Booking).where(Booking.session_id == world["cs2"]))
    page = client.get(f"/console/bookings?serial={b2.serial_number}").text
    assert f"/console/bookings/{b2.id}" in page
    assert client.post(f"/console/bookings/{b2.id}/cancel", data=dict(csrf_token=tok)).status_code == 200
    with db.reading() as s:
        assert s.get(ClinicSession, world["cs"]).status == "stopped"
        assert s.get(ClinicSession, world["cs"]).booked == 0
        assert dict(s.execute(select(Booking.session_id, Booking.status)).all()) == {
            world["cs"]: "stopped", world["cs2"]: "cancelled"}
        assert set(s.scalars(select(AuditEntry.action))) == {"account.register", "session.stop", "booking.cancel_on_behalf"}


def test_platform_admin_lifts_a_ban_and_creates_a_hospital_admin(client, world, db):
    from guahao.accounts.models import Ban, Person
    from guahao.audit.models import AuditEntry

    _, id_no = signup(client)
    with db.transaction() as s:
        create_staff(s, NOW, "platform", "staff1234", "platform_admin", "平台")
        person = s.scalar(select(Person))
        s.add(Ban(person_id=person.id, starts_on=D1 - timedelta(days=10), ends_on=D1 + timedelta(days=80),
                  reason="一年内爽约3次", created_at=NOW))
    client.cookies.clear()
    tok = staff_login(client, "platform")
    page = client.get("/console/bans").text
    assert id_no[:6] + "********" + id_no[-4:] in page and id_no not in page
    ban_id = int(re.search(r"/console/bans/(\d+)/lift", page).group(1))
    r = client.post(f"/console/bans/{ban_id}/lift", data=dict(csrf_token=tok))
    assert r.status_code == 422 and "解除原因" in r.text  # a lift must say why
    r = client.post(f"/console/bans/{ban_id}/lift", data=dict(csrf_token=tok, reason="核实为医院系统故障"))
    assert r.status_code == 200
    r = client.post("/console/hospital-admins", follow_redirects=False, data=dict(
        csrf_token=tok, hospital_id=world["b"], username="b-admin2", display_name="乙管理员", password="staff1234"))
    assert r.status_code == 303
    audit = client.get("/console/audit").text
    assert "ban.lift" in audit and "staff.create" in audit
    with db.reading() as s:
        ban = s.get(Ban, ban_id)
        assert ban.lifted_at is not None and ban.lifted_by == "platform"
        assert s.scalar(select(AuditEntry.actor_id).where(AuditEntry.action == "ban.lift")) == "platform"
    client.cookies.clear()
    staff_login(client, "b-admin2")
    assert client.get(f"/console/hospitals/{world['b']}").status_code == 200
    assert client.get(f"/console/hospitals/{world['a']}").status_code == 404


def test_patient_binds_a_visit_card_and_browses_doctor_and_hospital(client, world):
    signup(client)
    page = client.get("/patients").text
    pid = int(re.search(r"/patients/(\d+)/cards", page).group(1))
    tok = client.cookies.get("csrf_token")
    r = client.post(f"/patients/{pid}/cards", data=dict(hospital_id=world["a"], card_number="AB12345",
                                                        csrf_token=tok))
    assert r.status_code == 200 and "AB12345" in r.text
    r = client.post(f"/patients/{pid}/cards", data=dict(hospital_id=world["a"], card_number="#",
                                                        csrf_token=tok))
    assert r.status_code == 422 and "就诊卡号应为4–40位字母或数字" in r.text
    assert client.post(f"/patients/{pid}/remove", data=dict(csrf_token=tok)).status_code == 409
    doctor = client.get(f"/doctors/{world['doc']}").text
    assert "主任医师" in doctor and f"/sessions/{world['cs']}/book" in doctor
    hospital = client.get(f"/hospitals/{world['a']}").text
    assert "小儿内科" in hospital and "每日 07:00" in hospital and "就诊前一日 15:00 前可在线取消" in hospital
    home = client.get("/?department=小儿").text
    assert "王牌科室" in home and "甲医院" in home and "乙医院" not in home


def test_huge_or_malformed_ids_answer_pages_not_server_errors(client, world):
    signup(client)
    for path in ("/departments/99999999999999999999", "/hospitals/abc", "/doctors/0",
                 "/appointments/4294967296", "/sessions/99999999999/book"):
        r = client.get(path)
        assert r.status_code in (404, 422), path
        assert "text/html" in r.headers["content-type"]
    r = client.post(f"/sessions/{world['cs']}/book", data=dict(slot_id="99999999999", patient_id="1",
                                                               csrf_token=client.cookies.get("csrf_token")))
    assert r.status_code == 422


def test_after_the_cancel_deadline_the_slip_says_so_and_cancel_is_refused(client, world, frozen):
    signup(client)
    page = client.get(f"/sessions/{world['cs']}/book").text
    assert "2026-12-01 15:00" in page  # X1: 15:00 the day before
    patient_id = int(re.search(r'name="patient_id" value="(\d+)"', page).group(1))
    tok = client.cookies.get("csrf_token")
    loc = client.post(f"/sessions/{world['cs']}/book", follow_redirects=False, data=dict(
        slot_id=world["slots"][0], patient_id=patient_id, insurance_type="local", csrf_token=tok)).headers["location"]
    bid = int(re.search(r"/appointments/(\d+)", loc).group(1))
    frozen.move_to(f.local_dt(2026, 12, 1, 15, 0))
    slip = client.get(f"/appointments/{bid}").text
    assert "已过截止时间，不能在线取消" in slip and "取消预约</button>" not in slip
    r = client.post(f"/appointments/{bid}/cancel", data=dict(csrf_token=tok))
    assert r.status_code == 409 and "取消截止时间为2026-12-01 15:00，已过，不能在线取消" in r.text


@pytest.mark.parametrize("path", ["/billing/receipts/bill/99999999999999999999",
                                  "/billing/receipts/bill/99999999999999999999.pdf",
                                  "/billing/paid?booking_id=9223372036854775808", "/billing/receipts?year=99999"])
def test_page_ids_beyond_the_database_integers_are_refused_before_any_query(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 422 and "text/html" in r.headers["content-type"], (r.status_code, r.text[:200])


def test_a_child_without_an_id_number_is_added_on_the_patients_page(client, world):
    """A2 by form: the birth certificate's fields; an error keeps what was typed (but never an ID number)."""
    _, guardian = signup(client)
    tok = client.cookies.get("csrf_token")
    form = dict(name="王小宝", phone=f.phone(), relation="子女", insurance_type="self_pay", csrf_token=tok,
                bc_number="P440987654", bc_birth_date="2025-06-01", bc_sex="F", guardian_id_number=guardian)
    r = client.post("/patients", data=dict(form, bc_birth_date="2000-06-01"))
    assert r.status_code == 422 and "16" in r.text
    assert 'value="P440987654"' in r.text and guardian not in r.text  # kept the certificate, not the ID
    r = client.post("/patients", data=dict(form, bc_birth_date="not a date"))
    assert r.status_code == 422 and "出生日期" in r.text
    r = client.post("/patients", data=form, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/patients").text
    assert "出生证 P44****654" in page and "P440987654" not in page
    assert guardian[:6] + "********" + guardian[-4:] in page and guardian not in page
    r = client.post("/patients", data=dict(form, bc_number="", guardian_id_number=""))
    assert r.status_code == 422 and "身份证号码应为18位" in r.text  # neither an ID number nor a certificate


def test_a_certificate_child_is_given_an_id_number_on_the_patients_page(client, world):
    from datetime import date

    _, guardian = signup(client)
    tok = client.cookies.get("csrf_token")
    assert client.post("/patients", data=dict(
        name="王小宝", phone=f.phone(), relation="子女", insurance_type="self_pay", csrf_token=tok,
        bc_number="R330000002", bc_birth_date="2025-06-01", bc_sex="M", guardian_id_number=guardian),
        follow_redirects=False).status_code == 303
    page = client.get("/patients").text
    assert "补充身份证号" in page
    pid = int(re.search(r"/patients/(\d+)/id-number", page).group(1))
    r = client.post(f"/patients/{pid}/id-number", data=dict(id_number=f.id_number(birth=date(2025, 6, 2), n=1),
                                                             csrf_token=tok))
    assert r.status_code == 422 and "出生日期或性别与出生医学证明不符" in r.text
    given = f.id_number(birth=date(2025, 6, 1), n=1)
    r = client.post(f"/patients/{pid}/id-number", data=dict(id_number=given, csrf_token=tok), follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/patients").text
    assert given[:6] + "********" + given[-4:] in page and given not in page
    assert "出生证 R33" not in page and "补充身份证号" not in page

"""Browser tests: Playwright for Python driving the system Chromium against a real uvicorn server.

The server runs in a thread on a port of 8200–8299 over its own seeded SQLite database, with a fixed
clock passed to create_app (time-machine cannot reach a server thread reliably). Without
/usr/bin/chromium the tests skip, unless GUAHAO_REQUIRE_BROWSER=1 (set by .ci/run once the install
worked), which turns the skip into a failure. Each test saves screenshots under test-artifacts/.

Fixtures for other features' browser tests: `live_server` (url, clock, db, seeded ids in `.world`),
`browser`, `phone_page` (390×844), `desktop_page`, `shot(page, name)`, `signup_patient`, `login_staff`,
and `server_clock(dt)` to move the shared server's clock for one test (restored afterwards).
"""

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from guahao.clock import TZ, FixedClock

CHROMIUM = os.environ.get("GUAHAO_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("GUAHAO_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PORTS = range(8210, 8300)
# Tuesday 2026-12-01 10:00 in Beijing: 12-02 … 12-08 are released, 12-09 opens 12-02 07:00.
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
STAFF_PASSWORD = "staff1234"


def _need_browser():
    missing = not Path(CHROMIUM).exists()
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing = True
    if missing:
        if REQUIRE:
            pytest.fail(f"browser tests required (GUAHAO_REQUIRE_BROWSER=1) but {CHROMIUM} or playwright is missing")
        pytest.skip(f"{CHROMIUM} or playwright not installed")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8210–8299")


@dataclass
class LiveServer:
    url: str
    db: object
    clock: FixedClock
    world: dict = field(default_factory=dict)


def seed(db, now: datetime) -> dict:
    """Two hospitals (A with a flagship paediatric clinic), sessions over the window, staff of every role."""
    from guahao.catalog.models import Department, Doctor, Hospital
    from guahao.staff.service import create_staff
    from tests import factories as f

    w: dict = {}
    with db.transaction() as s:
        a = Hospital(name="北京市示范医院", grade="三级甲等", district="东城区", address="北京市东城区示范路1号",
                     phone="010-65000000", intro="综合性三级甲等医院，儿科与心血管内科为王牌科室。")
        b = Hospital(name="北京第二示范医院", grade="三级甲等", district="海淀区", address="北京市海淀区学院路2号")
        s.add_all([a, b])
        s.flush()
        peds = Department(hospital_id=a.id, name="儿科", sort_order=-1)
        med = Department(hospital_id=a.id, name="内科", sort_order=1)
        s.add_all([peds, med])
        s.flush()
        kids = Department(hospital_id=a.id, parent_id=peds.id, name="小儿内科", is_flagship=True,
                          location="门诊楼3层儿科分诊台")
        cardio = Department(hospital_id=a.id, parent_id=med.id, name="心血管内科", is_flagship=True,
                            location="门诊楼2层内科分诊台")
        s.add_all([kids, cardio])
        s.flush()
        chief = Doctor(hospital_id=a.id, department_id=kids.id, name="林慧", title="主任医师",
                       specialties="小儿呼吸道感染、哮喘", years_in_practice=26)
        attending = Doctor(hospital_id=a.id, department_id=kids.id, name="周晨", title="主治医师",
                           specialties="小儿常见病、多发病", years_in_practice=9)
        heart = Doctor(hospital_id=a.id, department_id=cardio.id, name="王建国", title="副主任医师",
                       specialties="高血压、冠心病", years_in_practice=18)
        b_dept = Department(hospital_id=b.id, name="内科")
        s.add(b_dept)
        s.flush()
        b_clinic = Department(hospital_id=b.id, parent_id=b_dept.id, name="消化内科", location="门诊楼1层")
        s.add_all([chief, attending, heart, b_clinic])
        s.flush()
        b_doc = Doctor(hospital_id=b.id, department_id=b_clinic.id, name="陈雪", title="主任医师")
        s.add(b_doc)
        s.flush()
        today = now.astimezone(TZ).date()
        sessions = {}
        for i in range(0, 9):
            day = today + timedelta(days=i)
            if day.weekday() == 6:
                continue
            sessions[("chief", day)] = f.session(s, chief, day, "AM", capacity=3, number_type="专家号", fee=8000, h=a)
            sessions[("attending", day)] = f.session(s, attending, day, "PM", capacity=12, number_type="普通号",
                                                     fee=5000, h=a)
            sessions[("heart", day)] = f.session(s, heart, day, "AM", capacity=10, number_type="专家号", fee=6000, h=a)
            sessions[("b", day)] = f.session(s, b_doc, day, "AM", capacity=10, h=b)
        staff = [("a-admin", "hospital_admin", a.id, None), ("a-clerk", "clerk", a.id, None),
                 ("a-doctor", "doctor", a.id, chief.id), ("b-admin", "hospital_admin", b.id, None),
                 ("b-clerk", "clerk", b.id, None), ("platform", "platform_admin", None, None)]
        for username, role, hid, did in staff:
            create_staff(s, now, username, STAFF_PASSWORD, role, username, hid, did)
        w.update(a=a.id, b=b.id, kids=kids.id, cardio=cardio.id, chief=chief.id, attending=attending.id,
                 heart=heart.id, b_doc=b_doc.id, today=today,
                 sessions={k: v.id for k, v in sessions.items()})
    return w


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    _need_browser()
    import uvicorn

    from guahao.app import create_app
    from guahao.db import make_database
    from guahao.migrate import upgrade

    path = tmp_path_factory.mktemp("browser") / "browser.db"
    db = make_database(f"sqlite:///{path}")
    upgrade(db.engine)
    clock = FixedClock(NOW)
    world = seed(db, NOW)
    app = create_app(db=db, clock=clock)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("test server did not start")
        time.sleep(0.05)
    yield LiveServer(url=f"http://127.0.0.1:{port}", db=db, clock=clock, world=world)
    server.should_exit = True
    thread.join(timeout=10)
    db.dispose()


# Package scope: a sync Playwright keeps an event loop running in the main thread while it lives, which
# would break asyncio.run() in the test packages that come after this one.
@pytest.fixture(scope="package")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, viewport):
    context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())  # the confirm() of cancel buttons
    return context, page


@pytest.fixture
def phone_page(browser, live_server):
    context, page = _page(browser, {"width": 390, "height": 844})
    yield page
    context.close()


@pytest.fixture
def desktop_page(browser, live_server):
    context, page = _page(browser, {"width": 1280, "height": 860})
    yield page
    context.close()


@pytest.fixture
def shot():
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page, name: str, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        # Sticky bars would be painted where the viewport was, mid-page, in a full-page capture.
        page.screenshot(path=str(path), full_page=full_page,
                        style=".topbar, .tabbar { position: static !important; }" if full_page else None)
        return path

    return save


@pytest.fixture
def server_clock(live_server):
    """Set the server's clock for this test: `server_clock(datetime(..., tzinfo=TZ))`."""
    def move(at: datetime) -> None:
        live_server.clock.at = at

    yield move
    live_server.clock.at = NOW


@pytest.fixture
def login_staff(live_server):
    def login(page, username: str, password: str = STAFF_PASSWORD):
        page.goto(f"{live_server.url}/console/login")
        page.fill("#username", username)
        page.fill("#password", password)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(lambda u: "/console/login" not in u)

    return login


@pytest.fixture
def signup_patient(live_server):
    """Sign up through the pages; returns (phone, password)."""
    from tests import factories as f

    def signup(page, name: str = "王明", id_number: str | None = None):
        phone, password = f.phone(), "secret123"
        page.goto(f"{live_server.url}/signup")
        page.fill("#phone", phone)
        page.fill("#password", password)
        page.fill("#name", name)
        page.fill("#id_number", id_number or f.id_number(date(1988, 3, 9)))
        page.get_by_role("button", name="注册并登录").click()
        page.wait_for_url("**/patients**")
        return phone, password

    return signup

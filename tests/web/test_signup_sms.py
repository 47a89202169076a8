"""A1 on the sign-up page: when the deployment requires an SMS code, the page asks for one (no JavaScript)."""

from sqlalchemy import func, select

from guahao.accounts.models import Account
from tests import factories as f
from tests.api.test_clockwork_notifications import _latest_code
from tests.web.test_pages import csrf


def test_signup_page_requires_and_checks_the_sms_code(client, db):
    client.app.state.settings = client.app.state.settings.model_copy(update={"require_sms_code": True})
    page = client.get("/signup").text
    assert 'name="sms_code"' in page and "获取验证码" in page
    tok = csrf(client, "/signup")
    ph = f.phone()
    form = dict(phone=ph, password="secret123", name="王小明", id_number=f.id_number(), csrf_token=tok)
    r = client.post("/signup", data=dict(form, action="signup"))
    assert r.status_code == 422 and "验证码" in r.text  # no code yet
    r = client.post("/signup", data=dict(form, action="send_code"))
    assert r.status_code == 200 and "验证码已发送" in r.text
    code = _latest_code(db, ph)
    wrong = "000000" if code != "000000" else "111111"
    r = client.post("/signup", data=dict(form, action="signup", sms_code=wrong))
    assert r.status_code >= 400 and 'data-testid="error"' in r.text
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 0
    r = client.post("/signup", data=dict(form, action="signup", sms_code=code), follow_redirects=False)
    assert r.status_code == 303 and "access_token" in r.cookies

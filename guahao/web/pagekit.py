"""What every server-rendered page needs: rendering with the CSRF token, the signed-in account from
its cookie, and the double-submit check on forms.

Forms work without JavaScript, so CSRF is a double-submit token: a random value in a cookie that a
page on another site cannot read, repeated in a hidden form field; SameSite=Lax keeps the login cookie
off cross-site POSTs as well.
"""

import hmac
import secrets
from urllib.parse import quote

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import RedirectResponse

from guahao.accounts.security import read_token
from guahao.errors import DomainError
from guahao.web.templating import templates

MAX_ID = 2**31 - 1
# Path ids bounded like the API's: a larger number would overflow PostgreSQL's integer columns.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

CSRF_COOKIE = "csrf_token"
ACCESS_COOKIE = "access_token"
STAFF_COOKIE = "staff_token"


def csrf_token(request: Request) -> str:
    tok = getattr(request.state, "csrf", None) or request.cookies.get(CSRF_COOKIE)
    if not tok or len(tok) < 20:
        tok = secrets.token_urlsafe(24)
    request.state.csrf = tok
    return tok


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response, name: str, value: str, http_only: bool = True) -> None:
    response.set_cookie(name, value, httponly=http_only, samesite="lax", secure=_secure(request), path="/")


def render(request: Request, template: str, /, status_code: int = 200, **ctx):
    ctx.setdefault("csrf", csrf_token(request))
    ctx.setdefault("me", getattr(request.state, "account_id", None))
    ctx.setdefault("now", request.app.state.clock.now())
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if request.cookies.get(CSRF_COOKIE) != ctx["csrf"]:
        set_cookie(request, response, CSRF_COOKIE, ctx["csrf"], http_only=False)
    return response


def redirect(url: str, request: Request | None = None) -> RedirectResponse:
    # 303: the browser follows a POST with a GET, so reloading the next page does not resubmit.
    return RedirectResponse(url, status_code=303)


def check_csrf(request: Request, form_token: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not form_token or not cookie or not hmac.compare_digest(cookie, form_token):
        raise DomainError("FORBIDDEN", "页面已过期，请刷新后重试")


def account_id_or_none(request: Request) -> int | None:
    token = request.cookies.get(ACCESS_COOKIE)
    if not token:
        return None
    try:
        claims = read_token(token, "account", request.app.state.clock.now())
    except DomainError:
        return None
    request.state.account_id = int(claims["sub"])
    return request.state.account_id


def require_account(request: Request) -> int:
    account_id = account_id_or_none(request)
    if account_id is None:
        raise DomainError("UNAUTHORIZED")
    return account_id


def login_url(request: Request) -> str:
    base = "/console/login" if request.url.path.startswith("/console") else "/login"
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        # A form posted after the login expired: come back to the page the form was on.
        from urllib.parse import urlsplit
        ref = urlsplit(request.headers.get("referer", ""))
        target = safe_next(ref.path + (f"?{ref.query}" if ref.query else ""), "/")
    return f"{base}?next={quote(target)}"


def safe_next(target: str | None, default: str = "/") -> str:
    # Only local paths: an open redirect after login would hand the session to a phishing page.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def is_page(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path.startswith("/static/") or path in ("/healthz", "/openapi.json",
                                                                                      "/docs", "/redoc"))


def html_error(request: Request, code: str, message: str, status: int):
    """Errors on pages: a login redirect when signed out, otherwise a readable Chinese page."""
    if code == "UNAUTHORIZED":
        response = redirect(login_url(request))
        response.delete_cookie(STAFF_COOKIE if request.url.path.startswith("/console") else ACCESS_COOKIE,
                               path="/")
        return response
    if request.url.path.startswith("/console"):
        from guahao.staff.rules import ROLE_LABELS

        staff = getattr(request.state, "staff", None)
        return render(request, "console/error.html", status_code=status, code=code, message=message, staff=staff,
                      role_label=ROLE_LABELS.get(staff.role, "") if staff else "")
    return render(request, "error.html", status_code=status, code=code, message=message)

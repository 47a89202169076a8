"""Who may call each route: every route in the app declares its audience here or with `@audience(...)`.

The table is the single place a reviewer reads to know who reaches what. `tests/security/test_access_matrix`
walks the app's route table and fails for any route without a rule, then attacks each route as an
anonymous caller, another account and every staff role of another hospital.

Runtime: API routes (`/api/...`) are also enforced here, before the route's own dependencies run
(defence in depth: a route that forgets `AccountId` still answers 401). Ownership and hospital scope
stay in the services: another account's or another hospital's objects answer 404 NOT_FOUND.
Pages do their own log-in redirects; the matrix test still checks them.
"""

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.routing import Mount

from guahao.accounts.security import read_token
from guahao.errors import DomainError
from guahao.staff.rules import Role


@dataclass(frozen=True)
class Audience:
    kind: str  # public | account | staff
    roles: tuple[Role, ...] = ()
    # Objects belong to one account / one hospital: others get 404, never 403, so IDs reveal nothing.
    scoped: bool = False

    def label(self) -> str:
        if self.kind == "staff":
            return "staff: " + ", ".join(r.value for r in self.roles) + (" (own hospital)" if self.scoped else "")
        return self.kind + (" (own objects)" if self.scoped else "")


PUBLIC = Audience("public")
ACCOUNT = Audience("account", scoped=True)
ALL_STAFF = tuple(Role)
HOSPITAL_ADMINS = (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN)
DESK = (Role.PLATFORM_ADMIN, Role.HOSPITAL_ADMIN, Role.CLERK)


def staff(*roles: Role, scoped: bool = True) -> Audience:
    return Audience("staff", tuple(roles), scoped)


# (method, path template) -> audience. Other feature branches may add rows here or use @audience.
RULES: dict[tuple[str, str], Audience] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # accounts
    ("POST", "/api/v1/accounts"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/api/v1/patients"): ACCOUNT,
    ("POST", "/api/v1/patients"): ACCOUNT,
    ("GET", "/api/v1/patients/{patient_id}"): ACCOUNT,
    ("DELETE", "/api/v1/patients/{patient_id}"): ACCOUNT,
    ("PUT", "/api/v1/patients/{patient_id}/visit-cards"): ACCOUNT,
    ("PUT", "/api/v1/patients/{patient_id}/id-number"): ACCOUNT,
    # catalog and schedules: public, and never rate limited (people refresh them at release time)
    ("GET", "/api/v1/hospitals"): PUBLIC,
    ("GET", "/api/v1/hospitals/{hospital_id}"): PUBLIC,
    ("GET", "/api/v1/hospitals/{hospital_id}/departments"): PUBLIC,
    ("GET", "/api/v1/departments/{department_id}/doctors"): PUBLIC,
    ("GET", "/api/v1/doctors/{doctor_id}"): PUBLIC,
    ("GET", "/api/v1/slots"): PUBLIC,
    # appointments
    ("POST", "/api/v1/appointments"): ACCOUNT,
    ("GET", "/api/v1/appointments"): ACCOUNT,
    ("GET", "/api/v1/appointments/{booking_id}"): ACCOUNT,
    ("POST", "/api/v1/appointments/{booking_id}/cancel"): ACCOUNT,
    ("POST", "/api/v1/appointments/{booking_id}/reschedule"): ACCOUNT,
    # staff
    ("POST", "/api/v1/staff/token"): PUBLIC,
    ("GET", "/api/v1/staff/me"): staff(*ALL_STAFF, scoped=False),
    ("GET", "/api/v1/admin/audit"): staff(*HOSPITAL_ADMINS),
    # release settings, schedule templates, calendar, 停诊 (clockwork)
    ("GET", "/api/v1/staff/hospitals/{hospital_id}/release-settings"): staff(*HOSPITAL_ADMINS),
    ("PUT", "/api/v1/staff/hospitals/{hospital_id}/release-settings"): staff(*HOSPITAL_ADMINS),
    ("GET", "/api/v1/staff/hospitals/{hospital_id}/templates"): staff(*HOSPITAL_ADMINS),
    ("PUT", "/api/v1/staff/doctors/{doctor_id}/templates"): staff(*HOSPITAL_ADMINS),
    ("DELETE", "/api/v1/staff/templates/{template_id}"): staff(*HOSPITAL_ADMINS),
    ("POST", "/api/v1/staff/hospitals/{hospital_id}/generate-sessions"): staff(*HOSPITAL_ADMINS),
    ("GET", "/api/v1/staff/calendar"): staff(*ALL_STAFF),
    ("PUT", "/api/v1/staff/calendar/{day}"): staff(*HOSPITAL_ADMINS),
    ("DELETE", "/api/v1/staff/calendar/{day}"): staff(*HOSPITAL_ADMINS),
    ("POST", "/api/v1/staff/sessions/{session_id}/stop"): staff(*HOSPITAL_ADMINS),
    # waitlist
    ("POST", "/api/v1/waitlist"): ACCOUNT,
    ("GET", "/api/v1/waitlist"): ACCOUNT,
    ("GET", "/api/v1/waitlist/{entry_id}"): ACCOUNT,
    ("DELETE", "/api/v1/waitlist/{entry_id}"): ACCOUNT,
    ("GET", "/api/v1/staff/sessions/{session_id}/waitlist"): staff(*DESK),
    # notifications: codes and resets are for people not logged in (rate limited per phone and address)
    ("POST", "/api/v1/sms-codes"): PUBLIC,
    ("POST", "/api/v1/password-resets"): PUBLIC,
    ("GET", "/api/v1/staff/outbox"): staff(*DESK),
    # no-shows and bans follow the person across hospitals: platform admins only
    ("GET", "/api/v1/staff/bans"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("POST", "/api/v1/staff/bans/{ban_id}/lift"): staff(Role.PLATFORM_ADMIN, scoped=False),
    # visit day: check-in and queue
    ("POST", "/api/v1/appointments/{booking_id}/check-in"): ACCOUNT,
    ("GET", "/api/v1/appointments/{booking_id}/queue"): ACCOUNT,
    ("GET", "/api/v1/staff/check-in/search"): staff(*DESK),
    ("POST", "/api/v1/staff/appointments/{booking_id}/check-in"): staff(*DESK),
    ("GET", "/api/v1/staff/sessions"): staff(*ALL_STAFF),
    ("GET", "/api/v1/staff/sessions/{session_id}/queue"): staff(*ALL_STAFF),
    ("POST", "/api/v1/staff/sessions/{session_id}/queue/{action}"): staff(*ALL_STAFF),
    # money
    ("GET", "/api/v1/appointments/{booking_id}/cancel-preview"): ACCOUNT,
    ("POST", "/api/v1/appointments/{booking_id}/pay"): ACCOUNT,
    ("GET", "/api/v1/appointments/{booking_id}/billing"): ACCOUNT,
    ("GET", "/api/v1/bills"): ACCOUNT,
    ("POST", "/api/v1/payments"): ACCOUNT,
    ("GET", "/api/v1/payments/{payment_id}"): ACCOUNT,
    # the provider's callback: no caller identity, trusted only by its signature (M2)
    ("POST", "/api/v1/payments/notify/{provider_name}"): PUBLIC,
    ("GET", "/api/v1/receipts"): ACCOUNT,
    ("GET", "/api/v1/billing/summary"): ACCOUNT,
    ("GET", "/api/v1/staff/price-items"): staff(*ALL_STAFF),
    ("POST", "/api/v1/staff/price-items"): staff(Role.HOSPITAL_ADMIN),
    ("PUT", "/api/v1/staff/hospital/billing-settings"): staff(Role.HOSPITAL_ADMIN),
    ("POST", "/api/v1/staff/bills"): staff(Role.HOSPITAL_ADMIN, Role.CLERK, Role.DOCTOR),
    ("POST", "/api/v1/staff/appointments/{booking_id}/cancel"): staff(Role.HOSPITAL_ADMIN, Role.CLERK),
    ("POST", "/api/v1/staff/refunds/retry"): staff(*HOSPITAL_ADMINS),
    ("GET", "/api/v1/staff/ledger"): staff(Role.PLATFORM_ADMIN, scoped=False),
    # ---- pages (cookie log-in; they redirect to their log-in page themselves)
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/signup"): PUBLIC,
    ("POST", "/signup"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/patients"): ACCOUNT,
    ("POST", "/patients"): ACCOUNT,
    ("POST", "/patients/{patient_id}/remove"): ACCOUNT,
    ("POST", "/patients/{patient_id}/cards"): ACCOUNT,
    ("POST", "/patients/{patient_id}/id-number"): ACCOUNT,
    ("GET", "/"): PUBLIC,
    ("GET", "/hospitals/{hospital_id}"): PUBLIC,
    ("GET", "/departments/{department_id}"): PUBLIC,
    ("GET", "/doctors/{doctor_id}"): PUBLIC,
    ("GET", "/sessions/{session_id}/book"): ACCOUNT,
    ("POST", "/sessions/{session_id}/book"): ACCOUNT,
    ("GET", "/appointments"): ACCOUNT,
    ("GET", "/appointments/{booking_id}"): ACCOUNT,
    ("POST", "/appointments/{booking_id}/cancel"): ACCOUNT,
    ("GET", "/appointments/{booking_id}/reschedule"): ACCOUNT,
    ("POST", "/appointments/{booking_id}/reschedule"): ACCOUNT,
    ("GET", "/visits/{booking_id}"): ACCOUNT,
    ("GET", "/visits/{booking_id}/status"): ACCOUNT,
    ("POST", "/visits/{booking_id}/check-in"): ACCOUNT,
    ("GET", "/billing/pay/{booking_id}"): ACCOUNT,
    ("POST", "/billing/pay/{booking_id}"): ACCOUNT,
    ("GET", "/billing/paid"): ACCOUNT,
    ("GET", "/billing/bills"): ACCOUNT,
    ("POST", "/billing/bills/pay"): ACCOUNT,
    ("GET", "/billing/cancel/{booking_id}"): ACCOUNT,
    ("POST", "/billing/cancel/{booking_id}"): ACCOUNT,
    ("GET", "/billing/receipts"): ACCOUNT,
    ("GET", "/billing/receipts/{kind}/{rid}.pdf"): ACCOUNT,
    ("GET", "/billing/receipts/{kind}/{rid}"): ACCOUNT,
    # the sandbox payment provider's payer page (not served in production): stands in for the provider's site
    ("GET", "/sandbox/pay/{out_trade_no}"): PUBLIC,
    ("POST", "/sandbox/pay/{out_trade_no}/confirm"): PUBLIC,
    # console
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): PUBLIC,
    ("POST", "/console/logout"): PUBLIC,
    ("GET", "/console"): staff(*ALL_STAFF, scoped=False),
    ("GET", "/console/hospitals"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("POST", "/console/hospitals"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("POST", "/console/hospital-admins"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("GET", "/console/audit"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("GET", "/console/bans"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("POST", "/console/bans/{ban_id}/lift"): staff(Role.PLATFORM_ADMIN, scoped=False),
    ("GET", "/console/hospitals/{hospital_id}"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/hospitals/{hospital_id}/settings"): staff(*HOSPITAL_ADMINS),
    ("GET", "/console/hospitals/{hospital_id}/departments"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/hospitals/{hospital_id}/departments"): staff(*HOSPITAL_ADMINS),
    ("GET", "/console/hospitals/{hospital_id}/doctors"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/hospitals/{hospital_id}/doctors"): staff(*HOSPITAL_ADMINS),
    ("GET", "/console/hospitals/{hospital_id}/sessions"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/sessions/{session_id}/stop"): staff(*HOSPITAL_ADMINS),
    ("GET", "/console/hospitals/{hospital_id}/templates"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/hospitals/{hospital_id}/templates"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/templates/{template_id}/remove"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/hospitals/{hospital_id}/generate"): staff(*HOSPITAL_ADMINS),
    ("GET", "/console/hospitals/{hospital_id}/prices"): staff(*HOSPITAL_ADMINS),
    ("POST", "/console/hospitals/{hospital_id}/prices"): staff(*HOSPITAL_ADMINS),
    # a hospital admin reads only its own hospital's messages (chosen from the log-in, not the request)
    ("GET", "/console/outbox"): staff(*HOSPITAL_ADMINS, scoped=False),
    ("GET", "/console/bookings"): staff(*DESK),
    ("GET", "/console/bookings/{booking_id}"): staff(*DESK),
    ("POST", "/console/bookings/{booking_id}/cancel"): staff(*DESK),
    ("POST", "/console/bookings/{booking_id}/check-in"): staff(*DESK),
    ("GET", "/console/today"): staff(Role.DOCTOR),
    ("GET", "/console/checkin"): staff(*DESK),
    ("POST", "/console/checkin/{booking_id}"): staff(*DESK),
    ("POST", "/console/checkin/{booking_id}/cancel"): staff(Role.HOSPITAL_ADMIN, Role.CLERK),
    ("GET", "/console/queue"): staff(*ALL_STAFF),
    ("GET", "/console/queue/{session_id}"): staff(*ALL_STAFF),
    ("POST", "/console/queue/{session_id}/bill"): staff(Role.HOSPITAL_ADMIN, Role.CLERK, Role.DOCTOR),
    ("GET", "/console/queue/{session_id}/list"): staff(*ALL_STAFF),
    ("POST", "/console/queue/{session_id}/{action}"): staff(*ALL_STAFF),
}
# Mounted sub-apps (static files) by path.
MOUNTS: dict[str, Audience] = {"/static": PUBLIC}


def audience(aud: Audience) -> Callable:
    """Declare a route's audience next to its code: put it *below* the `@router.get(...)` line."""
    def mark(fn):
        fn.__guahao_audience__ = aud
        return fn
    return mark


def _flat_routes(app):
    """(path as served, route) for every route, through included routers (FastAPI ≥0.16x nests them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [(r.path, r) for r in app.routes]
    return [(ctx.path, ctx) for ctx in iter_route_contexts(app.routes)]


def _endpoint(route):
    return getattr(route, "endpoint", None)


def audience_of(route, method: str | None = None, path: str | None = None) -> Audience | None:
    path = path or getattr(route, "path", None)
    if isinstance(getattr(route, "original_route", route), Mount) or isinstance(route, Mount):
        return MOUNTS.get(path)
    declared = getattr(_endpoint(route), "__guahao_audience__", None)
    if declared:
        return declared
    methods = [method] if method else sorted(getattr(route, "methods", None) or ())
    found = {RULES.get((m, path)) for m in methods if m != "HEAD"}
    return found.pop() if len(found) == 1 else None


def route_table(app) -> list[tuple[str, str, object, Audience | None]]:
    """Every (method, path, route, audience) the app serves; mounts appear with method "MOUNT"."""
    out = []
    for path, route in _flat_routes(app):
        if isinstance(getattr(route, "original_route", route), Mount):
            out.append(("MOUNT", path, route, audience_of(route, path=path)))
            continue
        for m in sorted(getattr(route, "methods", None) or ()):
            if m != "HEAD":
                out.append((m, path, route, audience_of(route, m, path)))
    return out


def missing_rules(app) -> list[str]:
    return [f"{m} {p}" for m, p, _, aud in route_table(app) if aud is None]


def _index(app) -> dict:
    """(endpoint function, method) -> audience, for the runtime check (the matched route in the request
    scope carries the endpoint, not necessarily the full served path)."""
    index = getattr(app.state, "access_index", None)
    if index is None:
        index = {}
        for m, _, route, aud in route_table(app):
            ep = _endpoint(route)
            if ep is None or aud is None:
                continue
            # One function served twice with different rules: keep the stricter (non-public) one.
            if index.get((ep, m)) is None or index[(ep, m)].kind == "public":
                index[(ep, m)] = aud
        app.state.access_index = index
    return index


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def enforce(request: Request) -> None:
    """App-wide dependency (async: CPU only, so no thread-pool hop): check the caller's kind and role against the route's declared audience."""
    if not request.url.path.startswith("/api/"):
        return
    aud = _index(request.app).get((_endpoint(request.scope.get("route")), request.method))
    if aud is None or aud.kind == "public":
        return
    now = request.app.state.clock.now()
    if aud.kind == "account":
        token = _bearer(request)
        if not token:
            raise DomainError("UNAUTHORIZED")
        read_token(token, "account", now)
        return
    token = _bearer(request) or request.cookies.get("staff_token")
    if not token:
        raise DomainError("UNAUTHORIZED")
    claims = read_token(token, "staff", now)
    if claims.get("role") not in aud.roles:
        raise DomainError("FORBIDDEN", "当前角色无权进行此操作")


# Path parameters naming an account's own objects (a session or hospital in a path is public).
ACCOUNT_OBJECT_PARAMS = ("{patient_id}", "{booking_id}", "{entry_id}", "{payment_id}", "{rid}")


def _answers(aud: Audience, path: str) -> tuple[str, str, str]:
    """What anonymous / another account / staff of another hospital get (SECURITY.md columns)."""
    if aud.kind == "public":
        return "served", "served", "served"
    # Pages send the visitor to their log-in page; their htmx fragments answer 401.
    login = "401" if path.startswith("/api/") else "log-in (303) / 401"
    if aud.kind == "account":
        mine = any(p in path for p in ACCOUNT_OBJECT_PARAMS)
        return login, ("404" if mine else "own data only"), login
    roles = ", ".join(r.value for r in aud.roles)
    staff = f"403 unless {roles}; then " + ("404" if "{" in path and aud.scoped else
                                            "own hospital's rows only" if aud.scoped else "served")
    return login, login, staff


def markdown_table(app) -> str:
    """The access table of SECURITY.md: `python -m guahao.security.access` prints it."""
    lines = ["| Method | Path | Audience | Anonymous | Another account | Staff of another hospital |",
             "|---|---|---|---|---|---|"]
    for m, path, _, aud in route_table(app):
        if aud is None:
            lines.append(f"| {m} | `{path}` | **NO RULE** | | | |")
            continue
        anon, other, staff_ = _answers(aud, path)
        lines.append(f"| {m} | `{path}` | {aud.label()} | {anon} | {other} | {staff_} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from guahao.app import create_app
    from guahao.config import Settings
    from guahao.db import make_database

    print(markdown_table(create_app(Settings(), db=make_database("sqlite://"))))

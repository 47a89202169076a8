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


def enforce(request: Request) -> None:
    """App-wide dependency: check the caller's kind and role against the route's declared audience."""
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


def _answers(aud: Audience, has_object: bool) -> tuple[str, str, str]:
    """What anonymous / another account / staff of another hospital get (SECURITY.md columns)."""
    if aud.kind == "public":
        return "served", "served", "served"
    if aud.kind == "account":
        return "401", ("404" if has_object else "own data only"), "401"
    roles = ", ".join(r.value for r in aud.roles)
    staff = f"403 unless {roles}; then " + ("404" if has_object and aud.scoped else
                                            "own hospital's rows only" if aud.scoped else "served")
    return "401", "401", staff


def markdown_table(app) -> str:
    """The access table of SECURITY.md: `python -m guahao.security.access` prints it."""
    lines = ["| Method | Path | Audience | Anonymous | Another account | Staff of another hospital |",
             "|---|---|---|---|---|---|"]
    for m, path, _, aud in route_table(app):
        if aud is None:
            lines.append(f"| {m} | `{path}` | **NO RULE** | | | |")
            continue
        anon, other, staff_ = _answers(aud, "{" in path)
        lines.append(f"| {m} | `{path}` | {aud.label()} | {anon} | {other} | {staff_} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from guahao.app import create_app
    from guahao.config import Settings
    from guahao.db import make_database

    print(markdown_table(create_app(Settings(), db=make_database("sqlite://"))))

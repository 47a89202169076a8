"""Cross-site request forgery on cookie-authenticated requests, and the protective response headers."""


def test_cross_site_posts_with_cookies_are_refused(client, world):
    c = client
    c.cookies.set("staff_token", "anything")
    body = dict(username="13800138000", password="x")
    for origin in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                   {"Origin": "null"}):
        r = c.post("/api/v1/auth/token", data=body, headers=origin)
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
    # Same origin, or no claim at all (non-browser client): through to the route.
    assert c.post("/api/v1/auth/token", data=body, headers={"Origin": "http://testserver"}).status_code == 401
    assert c.post("/api/v1/auth/token", data=body).status_code == 401
    c.cookies.clear()
    # No cookies: a bearer client from anywhere is not a CSRF risk.
    r = c.get("/api/v1/appointments", headers={**world["a"], "Origin": "https://app.example"})
    assert r.status_code == 200


def test_protective_headers_on_every_answer(client):
    for r in (client.get("/healthz"), client.get("/api/v1/nothing-here"), client.get("/static/app.css")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"


def test_token_less_page_forms_are_guarded_against_cross_site_posts(client, world):
    """The visit-day and money pages post forms without a CSRF token: the runtime Origin/Referer guard
    (BrowserGuard, installed by create_app) refuses them from another site, before the route runs."""
    from tests.security.conftest import staff_token

    clerk = staff_token(client, "h1-clerk")["Authorization"].split()[1]
    account = world["a"]["Authorization"].split()[1]
    booking = world["booking"]
    posts = [("staff_token", clerk, f"/console/checkin/{booking}"),
             ("staff_token", clerk, f"/console/checkin/{booking}/cancel"),
             ("staff_token", clerk, f"/console/queue/{world['session']}/call-next"),
             ("access_token", account, f"/visits/{booking}/check-in"),
             ("access_token", account, f"/billing/pay/{booking}"),
             ("access_token", account, f"/billing/cancel/{booking}"),
             ("access_token", account, "/billing/bills/pay")]
    for cookie, token, url in posts:
        for claim in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}, {"Origin": "null"}):
            client.cookies.clear()
            client.cookies.set(cookie, token)
            r = client.post(url, headers=claim, follow_redirects=False)
            assert r.status_code == 403 and "跨站请求被拒绝" in r.text, (url, claim, r.status_code)
    client.cookies.clear()
    # Nothing happened: the booking is still booked, not checked in or cancelled.
    got = client.get(f"/api/v1/appointments/{booking}", headers=world["a"]).json()
    assert got["status"] == "booked"
    # The same form from our own origin reaches the route (here: cancelled at the window by the clerk).
    client.cookies.set("staff_token", clerk)
    r = client.post(f"/console/checkin/{booking}/cancel", headers={"Origin": "http://testserver"})
    client.cookies.clear()
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/appointments/{booking}", headers=world["a"]).json()["status"] == "cancelled"

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

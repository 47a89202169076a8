"""Browser-facing protections for the cookie-authenticated pages (console, patient pages).

- Cross-site request forgery: a state-changing request (POST/PUT/PATCH/DELETE) that carries cookies and
  no Authorization header must come from our own origin when the browser says where it comes from
  (Origin, else Referer). Non-browser clients (no cookies, or a bearer token) are unaffected.
- Response headers: no MIME sniffing, no framing (clickjacking), no full URLs leaked in Referer.
"""

import json
from urllib.parse import urlsplit

from guahao.errors import DomainError

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"same-origin")]


def _origin_host(value: str) -> str | None:
    parts = urlsplit(value)
    return parts.netloc.lower() if parts.scheme and parts.netloc else None


def with_browser_headers(headers) -> list:
    """An answer's headers with ours that it lacks (also used by release/inline.py's answers)."""
    present = {k.lower() for k, _ in headers}
    return list(headers) + [(k, v) for k, v in HEADERS if k not in present]


class BrowserGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] in UNSAFE:  # the headers read only where they decide something
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            if "cookie" in headers and "authorization" not in headers:
                claimed = headers.get("origin") or headers.get("referer")
                if claimed and claimed != "null":
                    host = headers.get("host", "").lower()
                    if _origin_host(claimed) != host:
                        return await self._refuse(send)
                elif claimed == "null":
                    return await self._refuse(send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = with_browser_headers(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _refuse(self, send) -> None:
        error = DomainError("FORBIDDEN", "跨站请求被拒绝")
        body = json.dumps(error.body(), ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())] + HEADERS})
        await send({"type": "http.response.body", "body": body})

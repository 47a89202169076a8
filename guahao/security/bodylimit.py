"""Refuse oversized request bodies (413) before the application reads them, and NUL characters in the
query string (422: PostgreSQL cannot store them and SQLite's LIKE stops at them).

A declared Content-Length over the limit is refused at once. A body without one (chunked) is read here,
up to the limit, and handed on only if it fits. Pure ASGI, so it also guards routes that read the body
themselves.
"""

import json

from guahao.errors import DomainError


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send, code: str = "PAYLOAD_TOO_LARGE", message: str | None = None) -> None:
        error = DomainError(code, message)
        body = json.dumps(error.body(), ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        query = scope.get("query_string", b"").lower()
        if b"%00" in query or b"\x00" in query:
            return await self._refuse(send, "VALIDATION_ERROR", "请求参数包含无效字符")
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = True
            if too_big:
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        # No declared length: buffer (it is small by definition, or refused).
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return await self._refuse(send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

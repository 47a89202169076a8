"""Pluggable senders (S1). The outbox table is the default channel: a message written there counts as
delivered and the console shows it. Production plugs an SMS provider adapter in instead."""

import base64
import hashlib
import hmac
import json
from typing import Protocol

import httpx


class SendError(Exception):
    pass


class Sender(Protocol):
    name: str

    def send(self, phone: str, text: str, ref: str) -> None:
        """Deliver `text` to `phone`; `ref` is the outbox id (the provider's idempotency key). Raise
        SendError on a refusal."""


class OutboxSender:
    """Development and demo: the outbox row itself is the message."""

    name = "outbox"

    def send(self, phone: str, text: str, ref: str) -> None:
        return None


class HttpSmsSender:
    """The shape of a production SMS provider adapter: a signed JSON POST (HMAC-SHA256 over the body)
    with the outbox id as idempotency key. The HTTP client is injected; nothing here opens a network
    connection by itself, and tests drive it with httpx.MockTransport."""

    name = "sms"

    def __init__(self, endpoint: str, access_key: str, secret: str, sign_name: str = "预约挂号",
                 client: httpx.Client | None = None):
        self.endpoint, self.access_key, self.secret, self.sign_name = endpoint, access_key, secret, sign_name
        self.client = client or httpx.Client(timeout=5.0)

    def signature(self, body: bytes) -> str:
        return base64.b64encode(hmac.new(self.secret.encode(), body, hashlib.sha256).digest()).decode()

    def send(self, phone: str, text: str, ref: str) -> None:
        body = json.dumps({"phone": phone, "sign_name": self.sign_name, "text": text, "out_id": ref},
                          ensure_ascii=False, separators=(",", ":")).encode()
        try:
            r = self.client.post(self.endpoint, content=body, headers={
                "Content-Type": "application/json", "X-Access-Key": self.access_key,
                "X-Signature": self.signature(body), "Idempotency-Key": ref})
        except httpx.HTTPError as e:
            raise SendError(f"sms provider unreachable: {type(e).__name__}") from None
        if r.status_code >= 300:
            raise SendError(f"sms provider answered {r.status_code}")
        if r.json().get("code") not in ("OK", 0, "0"):
            raise SendError(f"sms provider refused: {str(r.json().get('code'))[:40]}")


def sender_from_settings(settings) -> Sender:
    if getattr(settings, "sms_endpoint", None):
        return HttpSmsSender(settings.sms_endpoint, settings.sms_access_key or "", settings.sms_secret or "")
    return OutboxSender()

"""At-rest protection for ID numbers and phones: Fernet encryption plus a keyed look-up hash."""

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet
from sqlalchemy.types import String, TypeDecorator

from guahao.config import get_settings


@lru_cache
def _keys(data_key: str) -> tuple[Fernet, bytes]:
    enc = hashlib.sha256(b"enc:" + data_key.encode()).digest()
    mac = hashlib.sha256(b"mac:" + data_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(enc)), mac


def lookup_hash(value: str) -> str:
    """Deterministic keyed hash: equal inputs match, the value cannot be read back."""
    _, mac = _keys(get_settings().data_key)
    return hmac.new(mac, value.encode(), hashlib.sha256).hexdigest()


def encrypt(value: str) -> str:
    f, _ = _keys(get_settings().data_key)
    return f.encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    f, _ = _keys(get_settings().data_key)
    return f.decrypt(token.encode()).decode()


class Encrypted(TypeDecorator):
    """A string column stored encrypted; reads give the plain value back."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt(value)

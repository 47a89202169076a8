"""Password hashing (argon2 via pwdlib) and signed access tokens."""

from datetime import datetime, timedelta
from functools import lru_cache

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from guahao.config import get_settings
from guahao.errors import DomainError


@lru_cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHash:
    return PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib),))


def hash_password(password: str) -> str:
    s = get_settings()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib).hash(password)


def verify_password(password: str, hashed: str) -> bool:
    s = get_settings()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib).verify(password, hashed)


def issue_token(subject: str, kind: str, now: datetime, extra: dict | None = None) -> str:
    s = get_settings()
    claims = {"sub": subject, "kind": kind, "iat": int(now.timestamp()),
              "exp": int((now + timedelta(minutes=s.token_minutes)).timestamp())}
    claims.update(extra or {})
    return jwt.encode(claims, s.secret_key, algorithm="HS256")


def read_token(token: str, kind: str, now: datetime) -> dict:
    try:
        claims = jwt.decode(token, get_settings().secret_key, algorithms=["HS256"],
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError:
        raise DomainError("UNAUTHORIZED", "登录已失效，请重新登录") from None
    # Time claims against the injected clock, not the system's (PyJWT would refuse a GUAHAO_NOW
    # server's tokens as issued in the future).
    if claims.get("kind") != kind or claims.get("exp", 0) <= now.timestamp():
        raise DomainError("UNAUTHORIZED", "登录已失效，请重新登录")
    return claims

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


@lru_cache(maxsize=65536)
def _verified_claims(token: str, secret: str) -> tuple:
    # PyJWT costs ~0.2 ms a token on this hardware, more than a refused booking; a token's signature
    # never changes, so each process checks it once (expiry is still checked on every request below).
    return tuple(jwt.decode(token, secret, algorithms=["HS256"],
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False}).items())


def read_token(token: str, kind: str, now: datetime) -> dict:
    try:
        claims = dict(_verified_claims(token, get_settings().secret_key))
    except jwt.PyJWTError:
        raise DomainError("UNAUTHORIZED", "登录已失效，请重新登录") from None
    # Expiry against the injected clock, not the system's (PyJWT would also refuse an `iat` that lies in
    # the system clock's future, as every token does under a GUAHAO_NOW ahead of real time).
    if claims.get("kind") != kind or claims.get("exp", 0) <= now.timestamp():
        raise DomainError("UNAUTHORIZED", "登录已失效，请重新登录")
    return claims

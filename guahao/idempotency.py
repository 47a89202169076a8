"""Idempotency-Key: a retried request gets the first answer back instead of acting twice."""

import hashlib
import json
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guahao.booking.models import IdempotencyRecord
from guahao.errors import DomainError

R = IdempotencyRecord.__table__


def fingerprint(method: str, path: str, body: dict) -> str:
    raw = json.dumps([method, path, body], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _stored(s: Session, account_id: int, key: str):
    return s.execute(select(R.c.fingerprint, R.c.status_code, R.c.body).where(
        R.c.account_id == account_id, R.c.key == key)).one_or_none()


def _replay(row, fp: str) -> tuple[int, dict]:
    if row.fingerprint != fp:
        raise DomainError("IDEMPOTENCY_KEY_REUSED")
    return row.status_code, row.body


def claim(s: Session, now: datetime, account_id: int, key: str, fp: str) -> tuple[int, dict] | None:
    """Reserve `key` inside the caller's transaction, or return the answer already given for it.

    The reservation is only visible once the transaction commits; a concurrent request with the same key
    waits on the unique index and then replays. If the action fails, the reservation rolls back with it:
    a failed attempt changed nothing, so its retry is evaluated afresh.
    """
    if not key or len(key) > 100:
        raise DomainError("VALIDATION_ERROR", "Idempotency-Key 应为1–100个字符")
    row = _stored(s, account_id, key)
    if row:
        return _replay(row, fp)
    try:
        with s.begin_nested():
            s.execute(insert(R).values(account_id=account_id, key=key, fingerprint=fp, status_code=0,
                                       body={}, created_at=now))
    except IntegrityError:
        return _replay(_stored(s, account_id, key), fp)
    return None


def record(s: Session, account_id: int, key: str, status_code: int, body: dict) -> None:
    s.execute(R.update().where(R.c.account_id == account_id, R.c.key == key)
              .values(status_code=status_code, body=body))

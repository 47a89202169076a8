"""SMS confirmation codes for sign-up and password reset (A1). Never commits.

A wrong try must count even though the request then fails: `verify` returns an outcome instead of
raising, so the caller commits the count first and raises afterwards."""

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guahao.accounts import repository as accounts
from guahao.accounts.rules import check_phone
from guahao.clock import at_local, local
from guahao.config import get_settings
from guahao.errors import DomainError
from guahao.notifications import rules
from guahao.notifications.models import SmsCode
from guahao.notifications.service import enqueue
from guahao.privacy import lookup_hash

POLICY = rules.CodePolicy()


def _key() -> bytes:
    return get_settings().secret_key.encode()


def request_code(s: Session, now: datetime, phone: str, purpose: str,
                 policy: rules.CodePolicy = POLICY) -> dict:
    """Send a code: at most one per 60 s and 10 per phone per day (A1).

    To keep registered phones secret, a sign-up code for a taken phone or a reset code for an unknown one
    answers the same but sends nothing."""
    phone = check_phone(phone)
    if purpose not in rules.PURPOSES:
        raise DomainError("VALIDATION_ERROR", "purpose 应为 signup 或 reset")
    ph = lookup_hash(phone)
    day_start = at_local(local(now).date(), datetime.min.time())
    last, today = s.execute(select(func.max(SmsCode.created_at), func.count(SmsCode.id)).where(
        SmsCode.phone_hash == ph, SmsCode.created_at >= day_start)).one()
    rules.check_may_send(now, last, today, policy)
    code = rules.new_code()
    row = SmsCode(phone_hash=ph, purpose=purpose, code_hash=rules.code_hash(_key(), ph, code), created_at=now,
                  expires_at=now + timedelta(minutes=policy.valid_minutes))
    s.add(row)
    s.flush()
    registered = accounts.account_by_phone(s, phone) is not None
    if (purpose == "signup") != registered:
        enqueue(s, now, f"sms_code:{row.id}", "sms_code", phone, rules.sms_code_text(code, purpose))
    return {"expires_in": policy.valid_minutes * 60, "resend_after": policy.resend_seconds}


def verify(s: Session, now: datetime, phone: str, purpose: str, code: str,
           policy: rules.CodePolicy = POLICY) -> str | None:
    """Use up the phone's latest code for `purpose`; None when it matched, else the error code to raise."""
    ph = lookup_hash((phone or "").strip())
    row = s.scalar(select(SmsCode).where(SmsCode.phone_hash == ph, SmsCode.purpose == purpose)
                   .order_by(SmsCode.created_at.desc(), SmsCode.id.desc()).limit(1).with_for_update())
    if row is None:
        return "SMS_CODE_INVALID"
    state = rules.code_state(now, row.expires_at, row.used_at is not None, row.voided_at is not None)
    if state != "usable":
        return "SMS_CODE_EXPIRED"
    if not (code or "").isdigit() or rules.code_hash(_key(), ph, code) != row.code_hash:
        row.wrong_tries += 1
        if row.wrong_tries >= policy.max_wrong_tries:
            row.voided_at = now
            return "SMS_CODE_EXPIRED"
        return "SMS_CODE_INVALID"
    row.used_at = now
    return None


def raise_for(outcome: str | None) -> None:
    if outcome:
        raise DomainError(outcome)


def confirm_code(db, now: datetime, phone: str, purpose: str, code: str | None) -> None:
    """Check a code in its own transaction, so a wrong try is counted even though the request fails."""
    if not code:
        raise DomainError("SMS_CODE_REQUIRED")
    with db.transaction() as s:
        outcome = verify(s, now, phone, purpose, code)
    raise_for(outcome)

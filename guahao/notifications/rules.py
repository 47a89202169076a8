"""Message texts (S1) and SMS confirmation codes (A1), pure."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from guahao.errors import DomainError

PERIOD_LABELS = {"AM": "上午", "PM": "下午"}
SIGNATURE = "【预约挂号】"


def shown_body(kind: str, body: str) -> str:
    """What staff may read of a message: codes are secrets of their phone's owner, so only that one was sent."""
    return "（验证码短信，内容不显示）" if kind == "sms_code" else body


@dataclass(frozen=True)
class BookingFacts:
    """What a patient needs to find their visit (S1)."""

    patient_name: str
    hospital: str
    department: str
    doctor: str | None
    visit_date: date
    period: str
    period_start: time
    period_end: time
    seq: int
    serial_number: str
    check_in_place: str
    number_type: str


def _when(b: BookingFacts) -> str:
    wd = "一二三四五六日"[b.visit_date.weekday()]
    return (f"{b.visit_date:%Y年%m月%d日}（周{wd}）{PERIOD_LABELS.get(b.period, b.period)}"
            f"{b.period_start:%H:%M}–{b.period_end:%H:%M}")


def _who(b: BookingFacts) -> str:
    return f"{b.hospital}{b.department}" + (f"{b.doctor}医生" if b.doctor else "") + f"（{b.number_type}）"


def booking_confirmed(b: BookingFacts) -> str:
    return (f"{SIGNATURE}{b.patient_name}，您已成功预约{_who(b)}，就诊时间{_when(b)}，就诊序号{b.seq}号，"
            f"流水号{b.serial_number}。请于就诊当日到{b.check_in_place}报到取号。")


def booking_cancelled(b: BookingFacts) -> str:
    return (f"{SIGNATURE}{b.patient_name}，您预约的{_who(b)}{_when(b)}第{b.seq}号（流水号{b.serial_number}）"
            f"已取消。")


def reminder(b: BookingFacts, lead_minutes: int) -> str:
    return (f"{SIGNATURE}就诊提醒：{b.patient_name}，您明天预约了{_who(b)}，就诊时间{_when(b)}，就诊序号"
            f"{b.seq}号，流水号{b.serial_number}。请于时段开始前{lead_minutes}分钟内到{b.check_in_place}报到，"
            f"逾期未报到将记为爽约。如不能就诊请及时取消。")


def session_stopped(b: BookingFacts, reason: str) -> str:
    return (f"{SIGNATURE}停诊通知：{b.patient_name}，因{reason}，您预约的{_who(b)}{_when(b)}第{b.seq}号"
            f"（流水号{b.serial_number}）已停诊取消，已付费用将全额退还。给您带来不便，敬请谅解。")


def waitlist_filled(b: BookingFacts) -> str:
    return (f"{SIGNATURE}候补成功：{b.patient_name}，您候补的{_who(b)}已为您预约成功，就诊时间{_when(b)}，"
            f"就诊序号{b.seq}号，流水号{b.serial_number}。请于就诊当日到{b.check_in_place}报到取号。"
            f"如不能就诊请在取消截止时间前取消。")


def banned(patient_name: str, strikes: int, year: int, ends_on: date) -> str:
    return (f"{SIGNATURE}{patient_name}，您{year}年已爽约{strikes}次，依据平台规则暂停预约至"
            f"{ends_on - timedelta(days=1):%Y年%m月%d日}，{ends_on:%Y年%m月%d日}起可再预约。")


def exam_preparation(patient_name: str, exam: str, when: datetime, notes: str) -> str:
    return f"{SIGNATURE}{patient_name}，您的{exam}检查安排在{when:%Y年%m月%d日 %H:%M}。检查前请注意：{notes}"


def report_ready(patient_name: str, hospital: str, report: str) -> str:
    return f"{SIGNATURE}{patient_name}，您在{hospital}的{report}报告已出，可登录查看。"


def sms_code_text(code: str, purpose: str) -> str:
    what = {"signup": "注册", "reset": "重置密码"}[purpose]
    return f"{SIGNATURE}您的{what}验证码为{code}，5分钟内有效。请勿将验证码告知他人。"


# --- SMS codes (A1) --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CodePolicy:
    valid_minutes: int = 5
    max_wrong_tries: int = 5
    resend_seconds: int = 60
    per_phone_per_day: int = 10


PURPOSES = ("signup", "reset")


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(key: bytes, phone_hash: str, code: str) -> str:
    return hmac.new(key, f"{phone_hash}:{code}".encode(), hashlib.sha256).hexdigest()


def check_may_send(now: datetime, last_sent: datetime | None, sent_today: int, policy: CodePolicy) -> None:
    if sent_today >= policy.per_phone_per_day:
        raise DomainError("RATE_LIMITED", f"该手机号今日获取验证码已达{policy.per_phone_per_day}次，请明天再试")
    if last_sent is not None:
        wait = policy.resend_seconds - int((now - last_sent).total_seconds())
        if wait > 0:
            raise DomainError("RATE_LIMITED", f"验证码发送过于频繁，请{wait}秒后再试", retry_after=wait)


def code_state(now: datetime, expires_at: datetime, used: bool, voided: bool) -> str:
    """usable | expired | used | voided"""
    if voided:
        return "voided"
    if used:
        return "used"
    if now >= expires_at:
        return "expired"
    return "usable"

"""Errors carry a stable code, an HTTP status and a Chinese message; one handler renders them."""

from pydantic import BaseModel

# code -> (HTTP status, default message)
CODES: dict[str, tuple[int, str]] = {
    "VALIDATION_ERROR": (422, "请求参数有误"),
    "NOT_FOUND": (404, "未找到该对象"),
    "UNAUTHORIZED": (401, "请先登录"),
    "FORBIDDEN": (403, "无权进行此操作"),
    "INVALID_CREDENTIALS": (401, "手机号或密码错误"),
    "PHONE_TAKEN": (409, "该手机号已注册"),
    "INVALID_PHONE": (422, "手机号格式不正确"),
    "INVALID_ID_NUMBER": (422, "身份证号码不正确"),
    "INVALID_BIRTH_CERTIFICATE": (422, "出生医学证明编号应为1个字母加9位数字"),
    "INVALID_NAME": (422, "姓名应为2–30个字符"),
    "PATIENT_LIMIT": (409, "每个账号最多添加5位就诊人"),
    "PATIENT_EXISTS": (409, "该就诊人已添加"),
    "ID_NUMBER_REGISTERED": (409, "该身份证号码已登记为另一位就诊人，请删除重复的就诊人后使用身份证号码添加"),
    "SELF_PATIENT_EXISTS": (409, "每个账号只能有一位本人就诊人"),
    "SELF_PATIENT_REQUIRED": (409, "本人就诊人不能删除"),
    "PATIENT_HAS_BOOKINGS": (409, "该就诊人还有未完成的预约，请先取消"),
    "NOT_RELEASED": (409, "该号源尚未放号"),
    "OUT_OF_WINDOW": (409, "该日期不在可预约范围内"),
    "SLOT_TAKEN": (409, "该号已被预约，请选择其他号源"),
    "SLOT_BUSY": (409, "该号正在被其他患者预约，请选择其他号源或稍后再试"),
    "SESSION_FULL": (409, "该出诊号源已约满"),
    "SESSION_STOPPED": (409, "该出诊已停诊"),
    "NOT_BOOKABLE_ONLINE": (409, "该号别不支持线上预约，请到医院窗口或电话预约"),
    "VISIT_CARD_REQUIRED": (409, "该医院需要先绑定就诊卡"),
    "DUPLICATE_DEPARTMENT_DAY": (409, "同一就诊人同一天在同一医院同一科室只能预约一次"),
    "DAILY_LIMIT": (409, "同一就诊人同一就诊日最多预约2个号"),
    "WEEKLY_LIMIT": (409, "同一就诊人任意连续7日内最多预约3个号"),
    "QUARTER_LIMIT": (409, "同一就诊人任意连续90日内最多预约5个号"),
    "BLACKLISTED": (403, "因爽约次数过多，暂停预约"),
    "CANCEL_DEADLINE_PASSED": (409, "已过取消截止时间，不能在线取消"),
    "NOT_CANCELLABLE": (409, "该预约当前状态不能取消"),
    "RESCHEDULE_MISMATCH": (409, "改约只能改到同一医生、同一号别的其他号源"),
    "IDEMPOTENCY_KEY_REUSED": (409, "同一幂等键已用于不同的请求"),
    "RATE_LIMITED": (429, "操作过于频繁，请稍后再试"),
    "SMS_CODE_INVALID": (422, "验证码不正确"),
    "SMS_CODE_EXPIRED": (422, "验证码已失效，请重新获取"),
    "SMS_CODE_REQUIRED": (422, "请输入短信验证码"),
    "WAITLIST_NOT_FULL": (409, "该出诊尚有号源，请直接预约"),
    "WAITLIST_ALREADY_JOINED": (409, "该就诊人已在此出诊的候补队列中"),
    "WAITLIST_ALREADY_BOOKED": (409, "该就诊人已预约此出诊，无需候补"),
    "SERVICE_UNAVAILABLE": (503, "服务暂时不可用，请稍后再试"),
    # Visit day (V1, V2)
    "CHECKIN_WRONG_DAY": (409, "今天不是该预约的就诊日，不能报到"),
    "CHECKIN_NOT_OPEN": (409, "尚未到报到时间"),
    "CHECKIN_CLOSED": (409, "报到时间已过"),
    "ALREADY_CHECKED_IN": (409, "该预约已报到"),
    "BOOKING_NOT_ACTIVE": (409, "该预约当前状态不能报到"),
    "NOT_PAID": (409, "该预约尚未支付挂号费"),
    "QUEUE_EMPTY": (409, "当前没有候诊患者"),
    "QUEUE_BUSY": (409, "当前患者尚未完成或过号，请先处理"),
    "NOT_CALLING": (409, "当前没有正在叫号的患者"),
    # Money (M1–M3, X2)
    "PAYMENT_EXPIRED": (409, "支付已超时，号源已释放"),
    "ALREADY_PAID": (409, "该账单已支付"),
    "NOTHING_TO_PAY": (409, "没有需要支付的账单"),
    "PAYMENT_NOT_FOUND": (404, "未找到该支付订单"),
    "REFUND_EXCEEDS_PAID": (409, "退款金额超出可退金额"),
    "PAYLOAD_TOO_LARGE": (413, "请求内容过大"),
    "INTERNAL_ERROR": (500, "服务器内部错误，请稍后再试"),
}


class DomainError(Exception):
    def __init__(self, code: str, message: str | None = None, **details):
        status, default = CODES[code]
        self.code = code
        self.status = status
        self.message = message or default
        self.details = details
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict:
        err = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def error_response(code: str, message: str | None = None, status: int | None = None, **details):
    from fastapi.responses import JSONResponse

    retry = details.pop("headers_retry", False)
    e = DomainError(code, message, **details)
    headers = {"Retry-After": "1"} if retry else None
    return JSONResponse(e.body(), status_code=status or e.status, headers=headers)


def api_error(exc: Exception):
    """The API's JSON answer to an exception: the handlers below use it, and so does the release fast
    lane (guahao/release/fastlane.py), which answers outside FastAPI's exception handling."""
    from fastapi.responses import JSONResponse
    from psycopg import DataError as PgDataError
    from sqlalchemy.exc import DataError

    if isinstance(exc, DomainError):
        headers = {}
        if exc.code == "UNAUTHORIZED" or exc.code == "INVALID_CREDENTIALS":
            headers["WWW-Authenticate"] = "Bearer"
        if "retry_after" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after"])
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
    if isinstance(exc, (DataError, PgDataError)):
        # The database refused a value the validators let through (a NUL character, say): the
        # client's input, not our fault, and the transaction has rolled back.
        return error_response("VALIDATION_ERROR", "请求包含无法保存的字符或数值")
    if _db_away(exc):
        # The database is away (restart, killed connection): say so; the pool reconnects by itself.
        return error_response("SERVICE_UNAVAILABLE", "数据库暂时不可用，请稍后重试", headers_retry=True)
    # A bug: answer in the usual error shape, never a traceback (the log keeps it, masked).
    return error_response("INTERNAL_ERROR")


def _db_away(exc: Exception) -> bool:
    """The database is unreachable or the connection broke (SQLAlchemy's wrapping, or psycopg's and its
    pool's own errors on the event-loop booking path)."""
    import psycopg
    from psycopg_pool import PoolTimeout
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolExhausted  # every connection of the pool busy too long

    return isinstance(exc, (OperationalError, InterfaceError, PoolExhausted, psycopg.OperationalError,
                            psycopg.InterfaceError, PoolTimeout))


def install_handlers(app) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from sqlalchemy.exc import DataError, InterfaceError, OperationalError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def _page(request: Request):
        # Server-rendered pages answer errors as HTML (or a login redirect); the API keeps its JSON.
        from guahao.web.pagekit import is_page

        return is_page(request)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):
        if _page(request):
            from guahao.web.pagekit import html_error

            return html_error(request, exc.code, exc.message, exc.status)
        return api_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        if _page(request):
            from guahao.web.pagekit import html_error

            return html_error(request, "VALIDATION_ERROR", "填写的内容有误，请返回检查后重试", 422)
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            problems.append({"field": loc, "message": e.get("msg", "")})
        return error_response("VALIDATION_ERROR", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        by_status = {404: "NOT_FOUND", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 405: "VALIDATION_ERROR",
                     413: "PAYLOAD_TOO_LARGE"}
        code = by_status.get(exc.status_code, "VALIDATION_ERROR")
        msg = {405: "不支持的请求方法"}.get(exc.status_code)
        if _page(request):
            from guahao.web.pagekit import html_error

            return html_error(request, code, msg or CODES[code][1], exc.status_code)
        return error_response(code, msg, status=exc.status_code)

    @app.exception_handler(Exception)
    @app.exception_handler(DataError)
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _other(request: Request, exc: Exception):
        return api_error(exc)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


# Every API route may answer these; listed in OpenAPI so clients (and schemathesis) know the shape.
ERROR_RESPONSES = {status: {"model": ErrorOut, "description": desc} for status, desc in (
    (400, "Bad request"), (401, "Not logged in"), (403, "Forbidden"), (404, "Not found (or not yours)"),
    (409, "Conflict with a rule"), (413, "Body too large"), (422, "Invalid input"),
    (429, "Rate limited (see Retry-After)"), (503, "Database unavailable (see Retry-After)"))}

"""Staff roles and what each may reach (console and staff API)."""

from enum import StrEnum

from guahao.errors import DomainError


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"  # hospitals, hospital admins, outbox, bans
    HOSPITAL_ADMIN = "hospital_admin"  # departments, doctors, templates, settings, prices, stop session
    CLERK = "clerk"  # registration desk: find booking, check in, cancel on behalf
    DOCTOR = "doctor"  # own queue: call next, pass, complete


ROLE_LABELS = {Role.PLATFORM_ADMIN: "平台管理员", Role.HOSPITAL_ADMIN: "医院管理员",
               Role.CLERK: "挂号员", Role.DOCTOR: "医生"}


def check_role(role: str, allowed: tuple[Role, ...]) -> None:
    if role not in allowed:
        raise DomainError("FORBIDDEN", "当前角色无权进行此操作")


def check_hospital(role: str, staff_hospital_id: int | None, hospital_id: int) -> None:
    """Staff see only their own hospital; a platform admin sees all.

    Another hospital's objects answer NOT_FOUND, so their existence is not revealed.
    """
    if role == Role.PLATFORM_ADMIN:
        return
    if staff_hospital_id != hospital_id:
        raise DomainError("NOT_FOUND")

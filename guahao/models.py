"""Imports every feature's tables so the metadata (and Alembic) sees them all."""

from guahao.accounts.models import Account, Ban, Patient, Person, VisitCard  # noqa: F401
from guahao.audit.models import AuditEntry  # noqa: F401
from guahao.billing.models import (  # noqa: F401
    Bill, BillItem, Payment, PaymentEvent, PriceItem, Refund, SandboxRefund, SandboxTxn)
from guahao.booking.models import Booking, IdempotencyRecord  # noqa: F401
from guahao.catalog.models import Department, Doctor, Hospital  # noqa: F401
from guahao.db import Base  # noqa: F401
from guahao.schedule.models import ClinicSession, Slot  # noqa: F401
from guahao.staff.models import StaffUser  # noqa: F401
from guahao.attendance.models import BanGrant  # noqa: F401,E402
from guahao.notifications.models import Notification, SmsCode  # noqa: F401,E402
from guahao.schedule.models import CalendarOverride, ScheduleTemplate  # noqa: F401,E402
from guahao.waitlist.models import WaitlistEntry  # noqa: F401,E402
from guahao.visits.models import QueueEntry  # noqa: F401

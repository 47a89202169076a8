from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guahao.db import Base, UTCDateTime


class AuditEntry(Base):
    """Append-only: who did what to which object, when and from where. Never updated or deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_type: Mapped[str] = mapped_column(String(10))  # staff | account | system
    actor_id: Mapped[str] = mapped_column(String(50))
    hospital_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(50))  # e.g. booking.check_in, session.stop, ban.lift
    target_type: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str] = mapped_column(String(50))
    details: Mapped[dict] = mapped_column(JSON, default=dict)  # masked values only
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)

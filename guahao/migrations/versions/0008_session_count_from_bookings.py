"""A session's booked count is counted from its active bookings: the `clinic_sessions.booked` counter (and its
CHECK) goes. Every booking of a session updated that one row and held its lock until the commit, which is
where the session's bookings queued at the release instant; the numbers' unique index (one active booking
per slot, `capacity` slots per session) already bounds the count.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('booked', 'checked_in', 'completed', 'pending_payment')"


def upgrade() -> None:
    with op.batch_alter_table("clinic_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_clinic_sessions_booked_within_capacity"), type_="check")
        batch_op.drop_column("booked")


def downgrade() -> None:
    with op.batch_alter_table("clinic_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("booked", sa.Integer(), server_default="0", nullable=False))
    op.execute(f"UPDATE clinic_sessions SET booked = (SELECT count(*) FROM bookings b "
               f"WHERE b.session_id = clinic_sessions.id AND b.{ACTIVE})")
    with op.batch_alter_table("clinic_sessions", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_clinic_sessions_booked_within_capacity"),
                                         "booked >= 0 AND booked <= capacity")

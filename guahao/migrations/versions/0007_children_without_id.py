"""Children without a resident ID number (A2): a person may be identified by a birth certificate's
number (persons.id_kind 'BC'), and such a patient carries the guardian's ID number.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import guahao.privacy

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_kind", sa.String(length=3), server_default="RIC", nullable=False))
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guardian_id_number", guahao.privacy.Encrypted(length=200), nullable=True))
        batch_op.add_column(sa.Column("guardian_id_masked", sa.String(length=18), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("guardian_id_masked")
        batch_op.drop_column("guardian_id_number")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_column("id_kind")

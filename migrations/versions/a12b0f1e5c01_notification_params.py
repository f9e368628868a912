"""notifications keep their message's msgid and values (shown in each reader's language)

Revision ID: a12b0f1e5c01
Revises: d1f9097fceda
Create Date: 2026-12-02 06:05:47.081911

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a12b0f1e5c01"
down_revision = "d1f9097fceda"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("params")

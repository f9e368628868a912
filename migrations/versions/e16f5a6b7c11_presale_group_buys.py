"""a group-buy item may order a presale (预售团购, issue 16)

Revision ID: e16f5a6b7c11
Revises: d16e4f5a6b10
Create Date: 2026-12-04 18:50:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e16f5a6b7c11"
down_revision = "d16e4f5a6b10"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("group_buy_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("presale_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_group_buy_items_presale_id"), ["presale_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_group_buy_items_presale_id_presales"),
            "presales",
            ["presale_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("group_buy_items", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_group_buy_items_presale_id_presales"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_group_buy_items_presale_id"))
        batch_op.drop_column("presale_id")

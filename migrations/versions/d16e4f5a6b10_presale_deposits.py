"""presale deposits (定金/尾款, issue 16)

Revision ID: d16e4f5a6b10
Revises: c16d3e4f5a09
Create Date: 2026-12-03 14:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d16e4f5a6b10"
down_revision = "c16d3e4f5a09"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("presales", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "payment_kind",
                sa.Enum(
                    "full",
                    "deposit",
                    name="presale_payment_kind",
                    native_enum=False,
                    create_constraint=True,
                    length=20,
                ),
                nullable=False,
                server_default="full",
            )
        )
        batch_op.add_column(sa.Column("deposit_fen", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            "deposit_below_price",
            "(payment_kind = 'full' AND deposit_fen IS NULL) OR (payment_kind = 'deposit' "
            "AND deposit_fen > 0 AND deposit_fen < price_fen)",
        )
    with op.batch_alter_table("presales", schema=None) as batch_op:
        batch_op.alter_column("payment_kind", server_default=None)
    with op.batch_alter_table("presale_reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deposit_fen", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("balance_order_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_presale_reservations_balance_order_id"), ["balance_order_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_presale_reservations_balance_order_id_orders"),
            "orders",
            ["balance_order_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("presale_reservations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_presale_reservations_balance_order_id_orders"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_presale_reservations_balance_order_id"), type_="unique"
        )
        batch_op.drop_column("balance_order_id")
        batch_op.drop_column("deposit_fen")
    with op.batch_alter_table("presales", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_presales_deposit_below_price"), type_="check")
        batch_op.drop_column("deposit_fen")
        batch_op.drop_column("payment_kind")

"""harvest-window presales (issue 16)

Revision ID: c16d3e4f5a09
Revises: b16c2d3e4f08
Create Date: 2026-12-03 13:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c16d3e4f5a09"
down_revision = "b16c2d3e4f08"
branch_labels = None
depends_on = None

SHIPMENT_STATUSES = (
    "awaiting_payment",
    "awaiting_harvest",
    "to_ship",
    "shipped",
    "delivered",
    "cancelled",
)
OLD_SHIPMENT_STATUSES = ("awaiting_payment", "to_ship", "shipped", "delivered", "cancelled")


def upgrade():
    op.create_table(
        "presales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("coop_id", sa.Integer(), nullable=False),
        sa.Column("harvest_from", sa.Date(), nullable=False),
        sa.Column("harvest_to", sa.Date(), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("limit_quantity", sa.Integer(), nullable=False),
        sa.Column("reserved_quantity", sa.Integer(), nullable=False),
        sa.Column("harvested_quantity", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "closed",
                "harvested",
                "failed",
                "done",
                name="presale_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("rolled_over_from_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("harvest_to >= harvest_from", name=op.f("ck_presales_window_ordered")),
        sa.CheckConstraint(
            "harvested_quantity IS NULL OR harvested_quantity >= 0",
            name=op.f("ck_presales_harvested_nonnegative"),
        ),
        sa.CheckConstraint("limit_quantity > 0", name=op.f("ck_presales_limit_positive")),
        sa.CheckConstraint("price_fen > 0", name=op.f("ck_presales_price_positive")),
        sa.CheckConstraint(
            "reserved_quantity >= 0 AND reserved_quantity <= limit_quantity",
            name=op.f("ck_presales_reserved_within_limit"),
        ),
        sa.ForeignKeyConstraint(["coop_id"], ["coops.id"], name=op.f("fk_presales_coop_id_coops")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_presales_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["rolled_over_from_id"],
            ["presales.id"],
            name=op.f("fk_presales_rolled_over_from_id_presales"),
        ),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_presales_sku_id_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presales")),
    )
    with op.batch_alter_table("presales", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_presales_coop_id"), ["coop_id"], unique=False)
        batch_op.create_index("ix_presales_sku_status", ["sku_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_presales_status"), ["status"], unique=False)

    op.create_table(
        "presale_reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("presale_id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("rollover_wanted", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "awaiting_payment",
                "reserved",
                "served",
                "refunded",
                "rolled_over",
                "cancelled",
                name="presale_reservation_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rolled_from_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_presale_reservations_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_presale_reservations_buyer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_presale_reservations_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["presale_id"],
            ["presales.id"],
            name=op.f("fk_presale_reservations_presale_id_presales"),
        ),
        sa.ForeignKeyConstraint(
            ["rolled_from_id"],
            ["presale_reservations.id"],
            name=op.f("fk_presale_reservations_rolled_from_id_presale_reservations"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_presale_reservations_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presale_reservations")),
        sa.UniqueConstraint("rolled_from_id", name=op.f("uq_presale_reservations_rolled_from_id")),
    )
    with op.batch_alter_table("presale_reservations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_presale_reservations_buyer_id"), ["buyer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_presale_reservations_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(
            "ix_presale_reservations_presale_status", ["presale_id", "status"], unique=False
        )

    # A presale's parcel waits for the harvest (awaiting_harvest): the status CHECK constraint
    # (text enums carry one) must allow the new state.
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_shipments_shipment_status"), type_="check")
        batch_op.create_check_constraint(
            "shipment_status", sa.column("status").in_(SHIPMENT_STATUSES)
        )


def downgrade():
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_shipments_shipment_status"), type_="check")
        batch_op.create_check_constraint(
            "shipment_status", sa.column("status").in_(OLD_SHIPMENT_STATUSES)
        )

    with op.batch_alter_table("presale_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_presale_reservations_presale_status")
        batch_op.drop_index(batch_op.f("ix_presale_reservations_order_id"))
        batch_op.drop_index(batch_op.f("ix_presale_reservations_buyer_id"))
    op.drop_table("presale_reservations")
    with op.batch_alter_table("presales", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_presales_status"))
        batch_op.drop_index("ix_presales_sku_status")
        batch_op.drop_index(batch_op.f("ix_presales_coop_id"))
    op.drop_table("presales")

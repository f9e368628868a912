"""product batches and trace codes (issue 16)

Revision ID: a16b1c2d3e07
Revises: f15a1b2c3d06
Create Date: 2026-12-03 13:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a16b1c2d3e07"
down_revision = "f15a1b2c3d06"
branch_labels = None
depends_on = None


def upgrade():
    # Written by hand: the batches table and the order line's batch.
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("harvested_on", sa.Date(), nullable=False),
        sa.Column("plot", sa.String(length=80), nullable=False),
        sa.Column("quantity_received", sa.Integer(), nullable=False),
        sa.Column("quantity_remaining", sa.Integer(), nullable=False),
        sa.Column(
            "inspection_result",
            sa.Enum(
                "passed",
                "failed",
                "not_tested",
                name="inspection_result",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("inspection_path", sa.String(length=200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "closed",
                name="batch_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "quantity_received >= 0", name=op.f("ck_batches_quantity_received_nonnegative")
        ),
        sa.CheckConstraint(
            "quantity_remaining >= 0", name=op.f("ck_batches_quantity_remaining_nonnegative")
        ),
        sa.CheckConstraint(
            "quantity_remaining <= quantity_received",
            name=op.f("ck_batches_remaining_within_received"),
        ),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_batches_sku_id_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("code", name=op.f("uq_batches_code")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index("ix_batches_sku_status", ["sku_id", "status"], unique=False)
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_order_lines_batch_id"), ["batch_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_order_lines_batch_id_batches"), "batches", ["batch_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_order_lines_batch_id_batches"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_order_lines_batch_id"))
        batch_op.drop_column("batch_id")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_sku_status")
    op.drop_table("batches")

"""background exports with progress

Revision ID: e13b1c2d3f05
Revises: d13a0b1c2e04
Create Date: 2026-12-02 10:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e13b1c2d3f05"
down_revision = "d13a0b1c2e04"
branch_labels = None
depends_on = None


def upgrade():
    # Written by hand (issue 13, point 5): only the export jobs' table, so that it does not
    # depend on what d13a0b1c2e04 holds.
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "campaign_xlsx",
                "ledger_csv",
                name="export_kind",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "done",
                "failed",
                name="export_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("active_key", sa.String(length=64), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("file_path", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "rows_done >= 0 AND rows_total >= 0", name=op.f("ck_export_jobs_rows_nonnegative")
        ),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_export_jobs_size_nonnegative")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_export_jobs_requested_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
        sa.UniqueConstraint("active_key", name=op.f("uq_export_jobs_active_key")),
    )
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_export_jobs_requested_by_id"), ["requested_by_id"], unique=False
        )
        batch_op.create_index("ix_export_jobs_status", ["status"], unique=False)


def downgrade():
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_export_jobs_status")
        batch_op.drop_index(batch_op.f("ix_export_jobs_requested_by_id"))
    op.drop_table("export_jobs")

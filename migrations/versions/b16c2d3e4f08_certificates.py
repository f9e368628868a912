"""certificates of co-ops and products (issue 16)

Revision ID: b16c2d3e4f08
Revises: a16b1c2d3e07
Create Date: 2026-12-03 13:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b16c2d3e4f08"
down_revision = "a16b1c2d3e07"
branch_labels = None
depends_on = None

KINDS = (
    "geographical_indication",
    "green_food",
    "organic",
    "selenium_rich",
    "food_business_licence",
    "other",
)


def upgrade():
    # Written by hand: the certificates and the products each covers. Product.certifications
    # (free text) stays as it was, no longer shown on the storefront.
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coop_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                *KINDS,
                name="certificate_kind",
                native_enum=False,
                create_constraint=True,
                length=30,
            ),
            nullable=False,
        ),
        sa.Column("number", sa.String(length=60), nullable=False),
        sa.Column("issuer", sa.String(length=100), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("covers_all_products", sa.Boolean(), nullable=False),
        sa.Column("file_path", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "verified",
                "rejected",
                name="certificate_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reject_reason", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["coop_id"], ["coops.id"], name=op.f("fk_certificates_coop_id_coops")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["users.id"], name=op.f("fk_certificates_uploaded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_id"], ["users.id"], name=op.f("fk_certificates_reviewed_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index("ix_certificates_coop_id", ["coop_id"], unique=False)
        batch_op.create_index("ix_certificates_status_kind", ["status", "kind"], unique=False)
    op.create_table(
        "certificate_products",
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_products_certificate_id_certificates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_certificate_products_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "certificate_id", "product_id", name=op.f("pk_certificate_products")
        ),
    )
    with op.batch_alter_table("certificate_products", schema=None) as batch_op:
        batch_op.create_index("ix_certificate_products_product_id", ["product_id"], unique=False)


def downgrade():
    with op.batch_alter_table("certificate_products", schema=None) as batch_op:
        batch_op.drop_index("ix_certificate_products_product_id")
    op.drop_table("certificate_products")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_certificates_status_kind")
        batch_op.drop_index("ix_certificates_coop_id")
    op.drop_table("certificates")

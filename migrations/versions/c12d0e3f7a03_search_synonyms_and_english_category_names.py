"""search synonyms (同义词) kept by the organizer; English names of categories

Revision ID: c12d0e3f7a03
Revises: b12c0d2e6f02
Create Date: 2026-12-02 06:11:29.748046

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c12d0e3f7a03"
down_revision = "b12c0d2e6f02"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "search_synonyms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("terms", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_synonyms")),
    )
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name_en", sa.String(length=40), server_default="", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.drop_column("name_en")
    op.drop_table("search_synonyms")

"""products lose the free-text `certifications`: certificates are uploaded and verified (issue 16)

Revision ID: f16a6b7c8d12
Revises: e16f5a6b7c11
Create Date: 2026-12-04 19:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f16a6b7c8d12"
down_revision = "e16f5a6b7c11"
branch_labels = None
depends_on = None


def upgrade():
    # The text was never checked by anyone; it is not carried into certificates (which need a
    # number, an issuer, a validity and a scan an organizer verifies). The co-op's product form
    # now points to the certificates page instead.
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("certifications")


def downgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("certifications", sa.String(length=200), nullable=False, server_default="")
        )

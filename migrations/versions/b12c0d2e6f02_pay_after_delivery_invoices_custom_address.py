"""pay after delivery (先货后款): orders' payment due date and on_credit status; invoices; a custom request's delivery address

Revision ID: b12c0d2e6f02
Revises: a12b0f1e5c01
Create Date: 2026-12-02 06:10:42.526776

"""
from alembic import op
import sqlalchemy as sa


ORDER_STATUSES = ('pending_payment', 'on_credit', 'paid', 'completed', 'cancelled', 'expired')
OLD_ORDER_STATUSES = ('pending_payment', 'paid', 'completed', 'cancelled', 'expired')

# revision identifiers, used by Alembic.
revision = 'b12c0d2e6f02'
down_revision = 'a12b0f1e5c01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('invoices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('tax_id', sa.String(length=30), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('status', sa.Enum('requested', 'issued', name='invoice_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('issued_by_id', sa.Integer(), nullable=True),
    sa.Column('file_path', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['issued_by_id'], ['users.id'], name=op.f('fk_invoices_issued_by_id_users')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_invoices_order_id_orders')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_invoices_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('order_id', name=op.f('uq_invoices_order_id'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_status'), ['status'], unique=False)

    with op.batch_alter_table('custom_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipient', sa.String(length=60), server_default='', nullable=False))
        batch_op.add_column(sa.Column('phone', sa.String(length=20), server_default='', nullable=False))
        batch_op.add_column(sa.Column('address', sa.String(length=300), server_default='', nullable=False))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_payment_due_at'), ['payment_due_at'], unique=False)

    # A unit's order may ship before it is paid (on_credit): the status CHECK constraint (text
    # enums carry one) must allow the new state.
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_order_status'), type_='check')
        batch_op.create_check_constraint('order_status', sa.column('status').in_(ORDER_STATUSES))


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_order_status'), type_='check')
        batch_op.create_check_constraint('order_status', sa.column('status').in_(OLD_ORDER_STATUSES))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_payment_due_at'))
        batch_op.drop_column('payment_due_at')

    with op.batch_alter_table('custom_requests', schema=None) as batch_op:
        batch_op.drop_column('address')
        batch_op.drop_column('phone')
        batch_op.drop_column('recipient')

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_status'))

    op.drop_table('invoices')

"""Work orders (工单) and their event trail (tables ``work_orders``, ``work_order_events``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:40:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('work_orders',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('district', sa.String(length=64), nullable=False),
    sa.Column('street', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('request_text', sa.Text(), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('reply_wanted', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('call_ids', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=140), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('reply', sa.Text(), nullable=False),
    sa.Column('kb_article', sa.String(length=64), nullable=True),
    sa.Column('returns', sa.JSON(), nullable=False),
    sa.Column('extension', sa.JSON(), nullable=True),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('reminded', sa.Boolean(), nullable=False),
    sa.Column('reopened', sa.Integer(), nullable=False),
    sa.Column('linked', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_orders'))
    )
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        for col in ('created_at', 'category', 'district', 'state', 'owner', 'deadline'):
            batch_op.create_index(batch_op.f(f'ix_work_orders_{col}'), [col], unique=False)
    op.create_table('work_order_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=140), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_order_events'))
    )
    with op.batch_alter_table('work_order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_order_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_order_events_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    op.drop_table('work_order_events')
    op.drop_table('work_orders')

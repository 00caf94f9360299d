"""Wrap-ups: the seat's disposition, notes and ticket fields of each call (table ``wrapups``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:10:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wrapups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('pool', sa.String(length=64), nullable=False),
    sa.Column('disposition', sa.String(length=64), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('ticket', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wrapups'))
    )
    with op.batch_alter_table('wrapups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wrapups_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_wrapups_call_id'), ['call_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wrapups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wrapups_call_id'))
        batch_op.drop_index(batch_op.f('ix_wrapups_at'))

    op.drop_table('wrapups')

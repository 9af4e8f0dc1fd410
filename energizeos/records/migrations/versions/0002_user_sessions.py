"""Login sessions for the app (only each token's SHA-256 is stored).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import energizeos.records.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', energizeos.records.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_username'), ['username'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_username'))
    op.drop_table('user_sessions')

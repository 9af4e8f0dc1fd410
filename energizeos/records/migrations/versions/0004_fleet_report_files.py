"""Fleet report files: which report files a site forwarded (the bytes stay in fleet_records).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 03:58:23.348436
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import energizeos.records.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('fleet_report_files',
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('epoch', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('report', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('time', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'epoch', 'seq')
    )
    with op.batch_alter_table('fleet_report_files', schema=None) as batch_op:
        batch_op.create_index('ix_fleet_report_files_site_time', ['site_id', 'time'], unique=False)



def downgrade() -> None:

    with op.batch_alter_table('fleet_report_files', schema=None) as batch_op:
        batch_op.drop_index('ix_fleet_report_files_site_time')

    op.drop_table('fleet_report_files')

"""Fleet tables: what the remote aggregator collects from edge sites (sites, records, telemetry, alarms).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:17:41.505080
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import energizeos.records.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('fleet_alarms',
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('alarm_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('device', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('raised', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('changed', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'alarm_id')
    )
    with op.batch_alter_table('fleet_alarms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_alarms_code'), ['code'], unique=False)
        batch_op.create_index(batch_op.f('ix_fleet_alarms_priority'), ['priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_fleet_alarms_state'), ['state'], unique=False)

    op.create_table('fleet_records',
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('epoch', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('time', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'epoch', 'seq')
    )
    with op.batch_alter_table('fleet_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_records_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_fleet_records_site_time', ['site_id', 'time'], unique=False)

    op.create_table('fleet_sites',
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('epoch', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('have_seq', sa.BigInteger(), nullable=False),
    sa.Column('head_seq', sa.BigInteger(), nullable=False),
    sa.Column('first_seen', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_record_time', energizeos.records.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('site_id')
    )
    op.create_table('fleet_telemetry',
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('point', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('time', energizeos.records.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('quality', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'point', 'time')
    )



def downgrade() -> None:

    op.drop_table('fleet_telemetry')
    op.drop_table('fleet_sites')
    with op.batch_alter_table('fleet_records', schema=None) as batch_op:
        batch_op.drop_index('ix_fleet_records_site_time')
        batch_op.drop_index(batch_op.f('ix_fleet_records_kind'))

    op.drop_table('fleet_records')
    with op.batch_alter_table('fleet_alarms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fleet_alarms_state'))
        batch_op.drop_index(batch_op.f('ix_fleet_alarms_priority'))
        batch_op.drop_index(batch_op.f('ix_fleet_alarms_code'))

    op.drop_table('fleet_alarms')


"""historian: records every status, command, decision and alarm topic into the database, in batches.

Rows collect in memory and go to the database every ``flush_period_s`` (sooner when a batch fills).
When the database is unavailable or locked the batch goes to a disk spool instead, and later
batches queue behind it so the order holds; a retry timer replays the spool oldest first. Writes
are idempotent (natural keys), so nothing is lost and nothing is doubled across an outage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from energizeos import runtime
from energizeos.home import subdir
from energizeos.nodes import historian_rows as rows
from energizeos.nodes.conditions import ConditionReporter
from energizeos.nodes.events import EVENTS_TOPIC
from energizeos.records.db import error_line, init_db, make_engine, redacted
from energizeos.records.spool import Spool, SpoolFileDamaged
from energizeos.records.writer import Batch, RecordWriter
from energizeos.runtime import Node, ParameterDescriptor, qos_profile_latched
from energizeos_msgs.msg import (
    Alarm,
    EmsEvent,
    GraphHealth,
    InterlockState,
)

# The database is away (down, locked, unreachable): spool and retry. Anything else is a bad batch.
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


class Historian(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("historian", **kwargs)
        url = self.declare_parameter("db_url", "", ParameterDescriptor(
            "database URL; empty: $ENERGIZEOS_DB_URL or the SQLite file under $ENERGIZEOS_HOME")).value
        flush_s = self.declare_parameter("flush_period_s", 1.0, ParameterDescriptor(
            "how often buffered rows are written", min_value=0.05, max_value=3600.0)).value
        self.max_batch_rows = self.declare_parameter("max_batch_rows", 20000, ParameterDescriptor(
            "write as soon as this many rows are buffered", min_value=100, max_value=1_000_000)).value
        retry_s = self.declare_parameter("retry_period_s", 2.0, ParameterDescriptor(
            "how often the spool is replayed while the database is away", min_value=0.1, max_value=300.0)).value
        spool_dir = self.declare_parameter("spool_dir", "", ParameterDescriptor(
            "disk spool for batches the database could not take; empty: $ENERGIZEOS_HOME/spool/historian")).value
        self.engine = make_engine(url or None, sqlite_busy_timeout_ms=200)  # never block the executor for long
        self.writer = RecordWriter(self.engine, actor="historian")
        self.spool = Spool(Path(spool_dir) if spool_dir else subdir("spool") / "historian")
        self.rejected = Spool(self.spool.directory / "rejected")
        self.conditions = ConditionReporter(self)
        self._schema_ready = False
        self._instance = os.urandom(4).hex()
        self._batches = 0
        self.batch = self._new_batch()
        self.rows_written = 0
        self.batches_spooled = 0
        self._last_interlocks: InterlockState | None = None
        self._last_health: GraphHealth | None = None

        for topic, cls in rows.TELEMETRY_TOPICS.items():
            self.create_subscription(cls, topic, lambda msg, topic=topic: self._add_many(
                "telemetry", rows.telemetry_rows(topic, msg)), 50)
        for topic, cls, table, row, depth in rows.RECORD_TOPICS:
            self.create_subscription(cls, topic, lambda m, table=table, row=row: self._add(table, row(m)), depth)
        self.create_subscription(EmsEvent, EVENTS_TOPIC, self.on_event, 100)
        self.create_subscription(InterlockState, "/ems/arbiter/interlocks", self.on_interlocks, qos_profile_latched)
        self.create_subscription(GraphHealth, "/ems/graph/health", self.on_health, qos_profile_latched)
        self.create_timer(flush_s, self.flush)
        self.create_timer(retry_s, self.retry_spool)
        self.add_on_shutdown(self.flush)
        self.get_logger().info(f"recording into {redacted(self.engine)}, spool {self.spool.directory}")
        if len(self.spool):
            self.get_logger().warning(f"{len(self.spool)} spooled batch(es) from an earlier run: replaying")

    # --- inputs -------------------------------------------------------------------------------
    def _new_batch(self) -> Batch:
        self._batches += 1
        return Batch(f"{self.get_name()}-{self._instance}:{self._batches:09d}")

    def _add(self, table: str, row: dict) -> None:
        self.batch.add(table, row)
        if self.batch.count >= self.max_batch_rows:
            self.flush()

    def _add_many(self, table: str, new_rows: list[dict]) -> None:
        self.batch.rows.setdefault(table, []).extend(new_rows)
        if self.batch.count >= self.max_batch_rows:
            self.flush()

    def on_event(self, msg: EmsEvent) -> None:
        try:
            row = rows.ems_event_row(msg)
        except ValueError as exc:  # malformed details: keep the event, say what was wrong
            self.get_logger().warning(f"event from {msg.source} has data_json that is not JSON ({exc}): kept as text")
            msg.data_json = json.dumps({"unparsed": msg.data_json})
            row = rows.ems_event_row(msg)
        self._add("events", row)

    def on_interlocks(self, msg: InterlockState) -> None:
        row = rows.interlock_event_row(msg, self._last_interlocks)
        self._last_interlocks = msg
        if row:
            self._add("events", row)

    def on_health(self, msg: GraphHealth) -> None:
        row = rows.graph_event_row(msg, self._last_health)
        self._last_health = msg
        if row:
            self._add("events", row)

    # --- writing --------------------------------------------------------------------------------
    def _write(self, batch: Batch) -> None:
        if not self._schema_ready:
            init_db(self.engine)
            self._schema_ready = True
        self.writer.write(batch)
        self.rows_written += batch.count

    def flush(self) -> None:
        if not self.batch.count:
            return
        batch, self.batch = self.batch, self._new_batch()
        if len(self.spool):  # older batches wait: keep the order
            self._to_spool(batch, "older batches are still spooled")
            self.retry_spool()
            return
        try:
            self._write(batch)
        except UNAVAILABLE as exc:
            self._schema_ready = False
            self._to_spool(batch, error_line(exc))
        except (SQLAlchemyError, DBAPIError, ValueError) as exc:
            self._reject(batch, exc)

    def _to_spool(self, batch: Batch, why: str) -> None:
        self.spool.put(batch)
        self.batches_spooled += 1
        self.conditions.set("EMS_HISTORIAN_SPOOLING", True, Alarm.PRIORITY_MEDIUM,
                            f"database unavailable ({why}): records are spooled to disk",
                            {"spool_dir": str(self.spool.directory)})

    def _reject(self, batch: Batch, exc: Exception) -> None:
        """A batch the database refuses for its content: kept on disk for an engineer, never dropped."""
        path = self.rejected.put(batch)
        self.get_logger().error(f"database refused batch {batch.batch_id} ({batch.count} rows): {error_line(exc)}; "
                                f"kept in {path}")

    def retry_spool(self) -> None:
        if not len(self.spool):
            return
        try:
            replayed = self.spool.replay(self._write)
        except UNAVAILABLE:
            self._schema_ready = False
            return
        except SpoolFileDamaged as exc:
            self.get_logger().error(str(exc))
            return
        except (SQLAlchemyError, DBAPIError, ValueError) as exc:
            batch = self.spool.take_oldest()
            if batch is not None:
                self._reject(batch, exc)
            return
        if replayed and not len(self.spool):
            self.get_logger().info(f"database back: replayed {replayed} spooled batch(es) in order")
            self.conditions.set("EMS_HISTORIAN_SPOOLING", False)



def main(args: list[str] | None = None) -> None:
    runtime.run_node(Historian, args)


if __name__ == "__main__":
    main()

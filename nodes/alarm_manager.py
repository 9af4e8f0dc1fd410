"""alarm_manager: evaluates the alarm catalogue on the live topics and runs the alarm lifecycle.

Transitions (raise, clear, acknowledge, shelve, unshelve) go out on ``/ems/alarms``; the historian
stores each one and seals it on the audit chain. Operators act through ``/ems/alarms/action``:
the user's role is looked up in the records database on every request, so a permission is
enforced here, not by what a screen shows.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from energizeos import runtime
from energizeos.knowledge.catalogue import TOPIC_TYPES, load_catalogue
from energizeos.nodes.alarm_engine import AlarmEngine, Limits, Transition
from energizeos.nodes.conditions import DEVICE_ALARMS_TOPIC
from energizeos.records.db import error_line, init_db, make_engine
from energizeos.records.models import AlarmRecord
from energizeos.records.types import ns_from_utc
from energizeos.records.users import authorize
from energizeos.runtime import Node, ParameterDescriptor, qos_profile_latched
from energizeos_msgs import msg as msgs
from energizeos_msgs.msg import Alarm
from energizeos_msgs.srv import AlarmAction

ALARMS_TOPIC = "/ems/alarms"
ACTION_SERVICE = "/ems/alarms/action"
LATCHED_TOPICS = {"/ems/arbiter/interlocks", "/ems/graph/health", "/ems/plan/active"}


class AlarmManager(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("alarm_manager", **kwargs)
        path = self.declare_parameter("catalogue", "", ParameterDescriptor(
            "alarm catalogue YAML; empty: the shipped knowledge/alarms.yaml")).value
        tick_s = self.declare_parameter("tick_period_s", 0.1, ParameterDescriptor(
            "how often delays, stale data and shelve expiry are evaluated", min_value=0.01, max_value=60.0)).value
        limits = Limits(
            chatter_raises=self.declare_parameter("chatter_raises", 5, ParameterDescriptor(
                "raises of one alarm within the chatter window that latch it", min_value=2, max_value=100)).value,
            chatter_window_s=self.declare_parameter("chatter_window_s", 60.0, ParameterDescriptor(
                "chatter window", min_value=1.0, max_value=3600.0)).value,
            max_shelve_s=self.declare_parameter("max_shelve_s", 8 * 3600.0, ParameterDescriptor(
                "longest a user may shelve an alarm", min_value=60.0, max_value=7 * 86400.0)).value)
        db_url = self.declare_parameter("db_url", "", ParameterDescriptor(
            "records database holding users and roles; empty: $ENERGIZEOS_DB_URL or the SQLite file")).value
        self.engine_db = make_engine(db_url or None)
        catalogue = load_catalogue(Path(path) if path else None)
        now = self.get_clock().now().nanoseconds
        self.alarms = AlarmEngine(catalogue, now, limits, authorize=self.authorize)
        self._restore_open_alarms()
        self.pub = self.create_publisher(Alarm, ALARMS_TOPIC, 200)
        for topic in sorted(self.alarms.topics):
            cls = getattr(msgs, TOPIC_TYPES[topic])
            qos = qos_profile_latched if topic in LATCHED_TOPICS else 50
            self.create_subscription(cls, topic, lambda m, topic=topic: self._publish(
                self.alarms.on_message(topic, m, self._now())), qos)
        self.create_subscription(Alarm, DEVICE_ALARMS_TOPIC,
                                 lambda m: self._publish(self.alarms.on_device_alarm(m, self._now())), 200)
        self.create_service(AlarmAction, ACTION_SERVICE, self.on_action)
        self.create_timer(tick_s, lambda: self._publish(self.alarms.tick(self._now())))
        self.get_logger().info(f"{len(catalogue.alarms)} alarms in the catalogue, watching "
                               f"{len(self.alarms.topics)} topics")

    def _restore_open_alarms(self) -> None:
        """Continue the occurrences that were open when this node last stopped (a respawn, a reboot)."""
        try:
            init_db(self.engine_db)
            with Session(self.engine_db) as session:
                open_alarms = session.exec(select(AlarmRecord).where(AlarmRecord.state != Alarm.STATE_NORMAL)).all()
        except SQLAlchemyError as exc:
            self.get_logger().warning(f"open alarms not restored, the records cannot be read: {error_line(exc)}")
            return
        restored = 0
        for r in open_alarms:
            try:
                evidence = json.loads(r.evidence_json or "{}")
            except ValueError:
                evidence = {}
            until = ns_from_utc(r.shelved_until) if r.shelved_until else 0
            restored += self.alarms.restore(r.code, r.source, r.alarm_id, r.state, ns_from_utc(r.raised_at),
                                            r.cause_alarm_id or 0, r.message, evidence, until)
        if restored:
            self.get_logger().info(f"continuing {restored} alarm(s) open before this start")

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _publish(self, transitions: list[Transition]) -> None:
        for t in transitions:
            self.pub.publish(t.to_msg())
            if t.event == Alarm.EVENT_RAISE and t.priority <= 2:
                cause = f" (caused by alarm {t.cause_alarm_id})" if t.cause_alarm_id else ""
                self.get_logger().warning(f"alarm {t.alarm_id} {t.code}: {t.message}{cause}")

    def authorize(self, user: str, action: str) -> str | None:
        try:
            _role, refusal = authorize(self.engine_db, user, f"{action} alarms")
        except SQLAlchemyError as exc:
            return f"the user database cannot be read ({error_line(exc)})"
        return refusal or None

    def on_action(self, request: AlarmAction.Request, response: AlarmAction.Response) -> AlarmAction.Response:
        ok, message, transitions = self.alarms.act(request.alarm_id, request.action, request.user.strip(),
                                                   request.comment, request.shelve_duration_s, self._now())
        self._publish(transitions)
        (self.get_logger().info if ok else self.get_logger().warning)(message)
        response.success, response.message = ok, message
        return response



def main(args: list[str] | None = None) -> None:
    runtime.run_node(AlarmManager, args)


if __name__ == "__main__":
    main()

"""uplink: forwards this site's records to the remote aggregator, storing them while the link is down.

It listens on the site's bus like the historian (telemetry, commands, arbiter decisions, alarm
transitions, events), numbers every record in a durable outbox and sends it over its own Zenoh
client session (TLS, user/password) to the aggregator's router. The aggregator acknowledges what
it has stored; unacknowledged records are sent again after a cut, in order (energizeos/remote).

It only listens here and only publishes ``fleet/<site>/batch|status|reply`` there. The one thing it
takes from the remote side is an alarm action (acknowledge, shelve, unshelve) that this site's
``remote.grants`` allow, passed to the alarm manager's service as the granted local account, which
the alarm manager role-checks again; every request, done or refused, is answered and recorded as a
``remote-request`` event (energizeos/remote/requests.py). Nothing from outside is ever put on the
site's bus, so the PCS and breaker stay the arbiter's alone.
Telemetry is thinned to one sample per topic per ``telemetry_period_s`` (0: every sample); commands,
decisions, alarms and events are always forwarded whole. The files of each report the reporter
announces go too, in ``report_formats`` (PDF by default), each only if it still has the SHA-256
the reporter announced.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from energizeos import runtime
from energizeos.home import subdir
from energizeos.nodes import historian_rows as rows
from energizeos.nodes.events import EVENTS_TOPIC, EventReporter
from energizeos.remote import requests
from energizeos.remote.config import RemoteConfigError, TlsFiles, UplinkSettings
from energizeos.remote.edge_link import EdgeLink
from energizeos.remote.protocol import ProtocolError
from energizeos.runtime import Future, Node, ParameterDescriptor
from energizeos.yaml_file import validated
from energizeos_msgs.msg import EmsEvent
from energizeos_msgs.srv import AlarmAction

PRUNE_PERIOD_S = 3600.0
ALARM_ACTION_SERVICE = "/ems/alarms/action"
ALARM_ACTIONS = {"acknowledge": AlarmAction.Request.ACTION_ACKNOWLEDGE,
                 "shelve": AlarmAction.Request.ACTION_SHELVE, "unshelve": AlarmAction.Request.ACTION_UNSHELVE}


def _settings(node: Node) -> UplinkSettings:
    def param(name: str, default: Any, text: str) -> Any:
        return node.declare_parameter(name, default, ParameterDescriptor(text)).value

    values = {
        "site_id": param("site_id", "", "this site's id at the aggregator"),
        "endpoint": param("endpoint", "", "the aggregator's router, e.g. tls/fleet.example.com:7450"),
        "user": param("user", "", "user name at the aggregator"),
        "password_file": param("password_file", "", "file holding the password"),
        "send_period_s": param("send_period_s", 0.2, "how often records are stored and sent"),
        "max_batch_records": param("max_batch_records", 500, "records per batch"),
        "window_records": param("window_records", 5000, "records sent but not yet acknowledged"),
        "resend_after_s": param("resend_after_s", 3.0, "no acknowledgement for this long: send again"),
        "retention_days": param("retention_days", 2.0, "acknowledged records are kept this long"),
        "lease_s": param("lease_s", 3.0, "a silent link is declared dead after this"),
        "telemetry_period_s": param("telemetry_period_s", 1.0,
                                    "forward one telemetry sample per topic per period (0: every one)"),
        "max_request_age_s": param("max_request_age_s", 30.0, "a remote request older than this is refused"),
        "report_formats": param("report_formats", ["pdf"], "report files forwarded with their announcement"),
        "max_report_file_mb": param("max_report_file_mb", 10.0, "a larger report file stays at the site"),
    }
    grants = param("grants", [], "remote parties' alarm requests acted on, one 'party=as_user:action,action' "
                                  "each (site config remote.grants)")
    try:
        values["grants"] = [requests.Grant.from_parameter(g) for g in grants if g]
    except ValueError as exc:
        raise RemoteConfigError(f"uplink parameter grants: {exc}") from exc
    outbox = param("outbox", "", "outbox file; empty: $ENERGIZEOS_HOME/remote/outbox.db")
    values["outbox"] = outbox or None
    ca, cert, key = (param(f"tls_{n}", "", f"TLS {n} file (PEM)") for n in ("ca", "cert", "key"))
    mutual = param("tls_mutual", True, "present a client certificate")
    if ca:
        values["tls"] = TlsFiles(ca=Path(ca), cert=Path(cert) if cert else None, key=Path(key) if key else None,
                                 mutual=mutual)
    settings = validated(UplinkSettings, values, "uplink parameters", RemoteConfigError)
    missing = settings.tls.missing() if settings.tls else []
    if missing:
        raise RemoteConfigError(f"uplink: TLS file(s) not found: {'; '.join(missing)}")
    return settings


class Uplink(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("uplink", **kwargs)
        settings = self.settings = _settings(self)
        self.telemetry_period_ns = int(settings.telemetry_period_s * 1e9)
        outbox = settings.outbox or subdir("remote") / "outbox.db"
        self.link = EdgeLink(settings, outbox)
        self.events = EventReporter(self)
        self.gate = requests.RequestGate(settings.grants, settings.max_request_age_s)
        self.alarm_action = self.create_client(AlarmAction, ALARM_ACTION_SERVICE)
        self._last_sample_ns: dict[str, int] = {}
        self._last_prune_s = -PRUNE_PERIOD_S

        for topic, cls in rows.TELEMETRY_TOPICS.items():
            self.create_subscription(cls, topic, lambda msg, topic=topic: self.on_telemetry(topic, msg), 50)
        for topic, cls, kind, row, depth in rows.RECORD_TOPICS:
            self.create_subscription(cls, topic, lambda m, kind=kind, row=row: self._add(kind, row(m)), depth)
        self.create_subscription(EmsEvent, EVENTS_TOPIC, self.on_event, 100)
        self.create_timer(settings.send_period_s, self.pump)
        self.create_timer(1.0, self.status)
        self.add_on_shutdown(self.link.close)
        self.get_logger().info(f"site {settings.site_id} → {settings.endpoint} as {settings.user}; outbox {outbox} "
                               f"(epoch {self.link.outbox.epoch}, {self.link.outbox.pending} record(s) to send)")

    def _add(self, kind: str, row: dict[str, Any]) -> None:
        self.link.add(kind, int(row["time_ns"]), row)

    def on_telemetry(self, topic: str, msg: Any) -> None:
        t = rows.stamp_ns(msg)
        if self.telemetry_period_ns and t - self._last_sample_ns.get(topic, -(1 << 62)) < self.telemetry_period_ns:
            return
        self._last_sample_ns[topic] = t
        self.link.add("telemetry", t, {"topic": topic, "rows": rows.telemetry_rows(topic, msg)})

    def on_event(self, msg: EmsEvent) -> None:
        try:
            self._add("events", rows.ems_event_row(msg))
        except ValueError:  # details that are not JSON (the historian logs it): forward the event without them
            msg.data_json = "{}"
            self._add("events", rows.ems_event_row(msg))
        announced = json.loads(msg.data_json or "{}") if msg.kind == "report" else None
        if isinstance(announced, dict):
            self.forward_report_files(announced, rows.stamp_ns(msg))

    def forward_report_files(self, announced: dict[str, Any], time_ns: int) -> None:
        """The announced report's files in the forwarded formats, each only if it still has the SHA-256
        the reporter announced (a file changed since is evidence of something wrong: it stays, and says so)."""
        paths, hashes = announced.get("paths"), announced.get("files")
        if not isinstance(paths, dict) or not isinstance(hashes, dict):
            return  # an announcement without file locations (an older reporter): the files stay at the site
        for fmt in self.settings.report_formats:
            path, expected = paths.get(fmt), hashes.get(fmt)
            if not isinstance(path, str) or not path or not isinstance(expected, str) or not expected:
                continue  # the site keeps no file of this format
            name = f"{announced.get('report', '?')} report {announced.get('period', '?')} ({fmt})"
            problem, data = self._read_report_file(Path(path), expected)
            if problem:
                self.get_logger().error(f"{name} not forwarded: {problem}")
                self.events.report("report-not-forwarded", f"{name} not forwarded: {problem}", report=announced.get(
                    "report"), period=announced.get("period"), format=fmt, reason=problem)
                continue
            self.link.add("report_files", time_ns, {
                "report": announced.get("report"), "period": announced.get("period"), "format": fmt,
                "name": Path(path).name, "sha256": expected, "size": len(data), "time_ns": time_ns,
                "data_b64": base64.b64encode(data).decode()})

    def _read_report_file(self, path: Path, expected: str) -> tuple[str, bytes]:
        """("", bytes) when the file is readable, small enough and unchanged; (why not, b"") otherwise."""
        limit = int(self.settings.max_report_file_mb * 1024 * 1024)
        try:
            size = path.stat().st_size
            if size > limit:
                return f"{path.name} is {size / 1048576:.1f} MB, over max_report_file_mb " \
                       f"{self.settings.max_report_file_mb:g}", b""
            data = path.read_bytes()
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror})", b""
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            return f"{path.name} has SHA-256 {digest}, not the {expected} announced: it changed after it was made", b""
        return "", data

    def pump(self) -> None:
        now = self.get_clock().now().nanoseconds
        change = self.link.pump(now)
        for key, payload in self.link.take_requests():
            self.on_request(key, payload, now)
        if change is not None:
            state = "up" if change.up else "down"
            text = (f"remote link {state}: {self.link.settings.endpoint}; {change.pending} record(s) waiting "
                    "to be acknowledged")
            (self.get_logger().info if change.up else self.get_logger().warning)(text)
            # on the site's bus for the historian; it comes back here too and so reaches the aggregator
            self.events.report("remote-link", text, link=state, pending=change.pending)

    def on_request(self, key: str, payload: bytes, now: int) -> None:
        try:
            party = requests.party_of(key)
        except ProtocolError as exc:  # the router only lets parties put under their own name: log it
            self.get_logger().error(f"remote request dropped: {exc}")
            return
        try:
            request = requests.decode_request(payload)
        except ProtocolError as exc:
            over = self.gate.count(party, now)
            if over is not None:
                self.flooded(party, requests.request_id_of(payload), over, now)
            else:
                self.answer(party, None, False, str(exc), request_id=requests.request_id_of(payload))
            return
        verdict = self.gate.decide(party, request, now)
        if verdict.flood:
            self.flooded(party, request.request_id, verdict, now)
            return
        if not verdict.accepted:
            self.answer(party, request, False, verdict.refusal)
            return
        if not self.alarm_action.service_is_ready():
            self.answer(party, request, False, "the alarm manager is not running at this site; nothing was done")
            return
        who = f"remote {party}/{request.person}" if request.person else f"remote {party}"
        comment = f"{who}: {request.comment}" if request.comment else who
        call = AlarmAction.Request(alarm_id=request.alarm_id, action=ALARM_ACTIONS[request.action],
                                   user=verdict.as_user, comment=comment,
                                   shelve_duration_s=request.shelve_s)
        future = self.alarm_action.call_async(call, timeout_sec=5.0)
        future.add_done_callback(lambda f: self._answered(party, request, verdict.as_user, f))

    def flooded(self, party: str, request_id: str, verdict: requests.Verdict, now: int) -> None:
        """Over the rate: answered and logged once a minute, not recorded one by one."""
        self.link.reply(party, requests.ReplyMsg(request_id, False, verdict.refusal, now))
        self.get_logger().warning(f"remote requests from {party}: {verdict.refusal}", throttle_duration_sec=60.0)

    def _answered(self, party: str, request: requests.RequestMsg, as_user: str, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self.answer(party, request, False, f"the alarm manager did not answer ({error}); "
                                               "the alarm's state on the site is what counts", as_user)
            return
        result = future.result()
        self.answer(party, request, result.success, result.message, as_user)

    def answer(self, party: str, request: requests.RequestMsg | None, ok: bool, message: str,
               as_user: str = "", request_id: str = "") -> None:
        """Reply to the party and record the request on the site's bus (historian, audit, aggregator)."""
        now = self.get_clock().now().nanoseconds
        request_id = request.request_id if request else request_id
        self.link.reply(party, requests.ReplyMsg(request_id, ok, message, now))
        what = f"{request.action} alarm {request.alarm_id}" if request else "malformed request"
        text = f"remote request from {party}: {what}: {'done' if ok else 'refused'} — {message}"
        (self.get_logger().info if ok else self.get_logger().warning)(text)
        details: dict[str, Any] = {"party": party, "request_id": request_id, "ok": ok, "reason": message}
        if request:
            details.update(action=request.action, alarm_id=request.alarm_id, person=request.person,
                           comment=request.comment, sent_ns=request.time_ns)
        self.events.report("remote-request", text, user=as_user, **details)

    def status(self) -> None:
        now = self.get_clock().now().nanoseconds
        if self.link.forwarder.link_up:
            self.link.publish_status(now)
        if now / 1e9 - self._last_prune_s >= PRUNE_PERIOD_S:
            self._last_prune_s = now / 1e9
            pruned = self.link.prune(now)
            if pruned:
                self.get_logger().info(f"outbox: pruned {pruned} acknowledged record(s) past retention")


def main(args: list[str] | None = None) -> None:
    runtime.run_node(Uplink, args)


if __name__ == "__main__":
    main()

"""The app's server-side actions. Each one reads the session and the user's role from the database
*now* (not what the page remembers), checks the permission, does the work through the node that owns
it (alarm manager, planner, assistant) and puts the attempt — allowed or refused — on the audit chain
with the user's name. A page may hide a button; this is where the rule is.

No Streamlit here: the same code is driven by the pages and by the tests.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from energizeos.access import accounts
from energizeos.access.permissions import PermissionDenied, Principal, require
from energizeos.records import audit, signoff
from energizeos.records.db import error_line
from energizeos.records.writer import verify_sealed_rows
from energizeos.runtime.node import ServiceCallError
from energizeos.site_config import AccessPolicy
from energizeos.ui.graph_view import GraphView
from energizeos_msgs.srv import AlarmAction, AskAssistant, PlanApproval

log = logging.getLogger("energizeos.ui")
ALARM_SERVICE = "/ems/alarms/action"
PLAN_SERVICE = "/ems/plan/approve"
ASK_SERVICE = "/ems/assistant/ask"
STREAM_TOPIC = "/ems/assistant/stream"
SERVICE_TIMEOUT_S = 5.0
STREAM_DRAIN_S = 1.0
AUDIT_TEXT = 500  # characters of a message or question kept in its audit entry
ASK_TIMEOUT_S = 60.0  # an LLM answer can take a while; the deterministic one takes milliseconds


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditStatus:
    ok: bool
    entries: int
    head_hash: str
    message: str


class SiteActions:
    def __init__(self, engine: Engine, graph: GraphView | None, policy: AccessPolicy | None = None) -> None:
        self.engine = engine
        self.graph = graph
        self.policy = policy or AccessPolicy()
        self._stream_ids = itertools.count(time.time_ns())

    # --- sessions -------------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> accounts.LoginResult:
        return accounts.login(self.engine, username, password, self.policy)

    def logout(self, token: str) -> None:
        accounts.logout(self.engine, token)

    def who(self, token: str, touch: bool = False) -> Principal:
        return accounts.resume(self.engine, token, self.policy, touch=touch)

    # --- the common path ------------------------------------------------------------------------------
    def _run(self, token: str, permission: str, subject: str, details: dict[str, Any],
             work: Callable[[Principal], ActionResult], action: str = "") -> ActionResult:
        try:
            who = self.who(token, touch=True)
        except PermissionDenied as exc:
            return ActionResult(False, str(exc))
        try:
            require(who, permission)
        except PermissionDenied as exc:
            self._audit(who, action or permission, subject, details, False, str(exc))
            return ActionResult(False, f"refused: {exc}")
        try:
            result = work(who)
        except ServiceCallError as exc:
            result = ActionResult(False, f"the site did not answer: {exc}; nothing was changed")
        except (accounts.AccountError, ValueError) as exc:
            result = ActionResult(False, str(exc))
        self._audit(who, action or permission, subject, details, result.ok, result.message)
        return result

    def _audit(self, who: Principal, action: str, subject: str, details: dict[str, Any], ok: bool,
               message: str) -> None:
        try:
            audit.append_committed(self.engine, "ui-action", who.username, subject,
                                   {"action": action, "role": who.role, "session": who.session_id,
                                    "result": "done" if ok else "refused", "message": message[:AUDIT_TEXT],
                                    **details})
        except SQLAlchemyError as exc:  # the action itself is recorded by the node that did it
            log.error(f"{action} by {who.username} not on the audit chain: {error_line(exc)}")

    def _call(self, srv_type: type, name: str, request: Any, timeout_s: float = SERVICE_TIMEOUT_S) -> Any:
        if self.graph is None:
            raise ServiceCallError(f"service {name}: the app has no graph connection")
        return self.graph.call(srv_type, name, request, timeout_s)

    # --- alarms ---------------------------------------------------------------------------------------
    def acknowledge(self, token: str, alarm_id: int, comment: str = "") -> ActionResult:
        return self._alarm(token, "acknowledge_alarm", alarm_id, AlarmAction.Request.ACTION_ACKNOWLEDGE, comment)

    def shelve(self, token: str, alarm_id: int, hours: float, comment: str) -> ActionResult:
        if not comment.strip():
            return ActionResult(False, "say why the alarm is shelved (the comment is required)")
        return self._alarm(token, "shelve_alarm", alarm_id, AlarmAction.Request.ACTION_SHELVE, comment, hours)

    def unshelve(self, token: str, alarm_id: int) -> ActionResult:
        return self._alarm(token, "shelve_alarm", alarm_id, AlarmAction.Request.ACTION_UNSHELVE, "")

    def _alarm(self, token: str, permission: str, alarm_id: int, action: int, comment: str,
               hours: float = 0.0) -> ActionResult:
        def work(who: Principal) -> ActionResult:
            request = AlarmAction.Request(alarm_id=int(alarm_id), action=action, user=who.username,
                                          comment=comment.strip(), shelve_duration_s=float(hours) * 3600.0)
            response = self._call(AlarmAction, ALARM_SERVICE, request)
            return ActionResult(response.success, response.message)
        return self._run(token, permission, f"alarm:{alarm_id}", {"comment": comment.strip(), "hours": hours}, work)

    # --- plans ----------------------------------------------------------------------------------------
    def decide_plan(self, token: str, plan_id: int, approve: bool, comment: str) -> ActionResult:
        def work(who: Principal) -> ActionResult:
            if not approve and not comment.strip():
                return ActionResult(False, "say why the plan is rejected (the comment is required)")
            request = PlanApproval.Request(plan_id=int(plan_id), approve=approve, user=who.username,
                                           comment=comment.strip())
            response = self._call(PlanApproval, PLAN_SERVICE, request)
            return ActionResult(response.success, response.message)
        return self._run(token, "decide_plan", f"plan:{plan_id}",
                         {"approve": approve, "comment": comment.strip()}, work)

    # --- the assistant --------------------------------------------------------------------------------
    def ask(self, token: str, question: str, on_text: Callable[[str], None] | None = None) -> ActionResult:
        """Ask the assistant node. With ``on_text`` and an LLM configured, the text arrives as it is
        generated; the result holds the checked answer (which may replace what was streamed)."""
        def work(who: Principal) -> ActionResult:
            if not question.strip():
                return ActionResult(False, "the question is empty")
            stream_id = next(self._stream_ids) if on_text is not None and self.graph is not None else 0
            complete = self.graph.follow_stream(STREAM_TOPIC, stream_id, on_text) if stream_id else None
            try:
                request = AskAssistant.Request(question=question.strip(), user=who.username, stream_id=stream_id)
                response = self._call(AskAssistant, ASK_SERVICE, request, ASK_TIMEOUT_S)
                if complete is not None:  # the reply may overtake the last pieces: let them arrive
                    complete.wait(STREAM_DRAIN_S)
            finally:
                if stream_id:
                    self.graph.unfollow_stream(stream_id)
            if response.error:
                return ActionResult(False, response.error)
            return ActionResult(True, response.answer, {"citations": list(response.citations),
                                                        "grounded": response.grounded, "mode": response.mode,
                                                        "latency_ms": response.latency_ms})
        return self._run(token, "view", "assistant", {"question": question.strip()[:AUDIT_TEXT]}, work,
                         action="ask_assistant")

    # --- users ----------------------------------------------------------------------------------------
    def create_user(self, token: str, username: str, role: str, display_name: str = "",
                    organisation: str = "") -> ActionResult:
        def work(who: Principal) -> ActionResult:
            password = accounts.create_user(self.engine, who, username.strip().lower(), role,
                                            display_name=display_name.strip(), organisation=organisation.strip(),
                                            policy=self.policy)
            return ActionResult(True, f"user {username} created with role {role}", {"password": password})
        return self._run(token, "manage_users", f"user:{username}", {"change": "create", "role": role}, work)

    def set_role(self, token: str, username: str, role: str) -> ActionResult:
        def work(who: Principal) -> ActionResult:
            accounts.set_role(self.engine, who, username, role)
            return ActionResult(True, f"{username} is now {role}")
        return self._run(token, "manage_users", f"user:{username}", {"change": "role", "role": role}, work)

    def set_disabled(self, token: str, username: str, disabled: bool) -> ActionResult:
        def work(who: Principal) -> ActionResult:
            accounts.set_disabled(self.engine, who, username, disabled)
            return ActionResult(True, f"{username} {'disabled' if disabled else 'enabled'}")
        return self._run(token, "manage_users", f"user:{username}", {"change": "disabled" if disabled else "enabled"},
                         work)

    def unlock(self, token: str, username: str) -> ActionResult:
        def work(who: Principal) -> ActionResult:
            accounts.unlock(self.engine, who, username)
            return ActionResult(True, f"{username} unlocked")
        return self._run(token, "manage_users", f"user:{username}", {"change": "unlock"}, work)

    def reset_password(self, token: str, username: str) -> ActionResult:
        def work(who: Principal) -> ActionResult:
            password = accounts.set_password(self.engine, who, username, policy=self.policy)
            return ActionResult(True, f"new password for {username} (shown once)", {"password": password})
        return self._run(token, "manage_users", f"user:{username}", {"change": "password"}, work)

    # --- commissioning --------------------------------------------------------------------------------
    def witness_run(self, token: str, run_id: int) -> ActionResult:
        """Sign a finished commissioning run as its witness: the signer is the session's user, as stored now."""
        def work(who: Principal) -> ActionResult:
            try:
                made = signoff.sign_off(self.engine, int(run_id), who.username, via="app")
            except SQLAlchemyError as exc:  # one transaction: nothing was signed
                return ActionResult(False, f"the records could not be written ({error_line(exc)}); run {run_id} "
                                           "is not signed")
            org = f" ({made.organisation})" if made.organisation else ""
            return ActionResult(True, f"run {run_id} signed off by {made.witness}{org}; run SHA-256 {made.run_sha256}, "
                                      f"audit entry {made.audit_seq} with hash {made.entry_hash} (note it: "
                                      "'energizeos evidence verify --expect-signoff' checks a package against it)",
                                {"run_sha256": made.run_sha256, "audit_seq": made.audit_seq,
                                 "entry_hash": made.entry_hash})
        return self._run(token, "witness", signoff.subject(int(run_id)), {"run": int(run_id)}, work,
                         action="witness_run")

    # --- evidence -------------------------------------------------------------------------------------
    def verify_audit(self, token: str) -> AuditStatus:
        """Walk the whole chain and recompute every sealed row (any logged-in user may ask)."""
        self.who(token)
        with Session(self.engine) as session:
            chain = audit.verify(session)
            if not chain.ok:
                return AuditStatus(False, chain.checked, chain.head_hash, chain.reason)
            problem = verify_sealed_rows(session)
        if problem is not None:
            return AuditStatus(False, chain.checked, chain.head_hash,
                               f"entry {problem.audit_seq}: {problem.table}: {problem.reason}")
        return AuditStatus(True, chain.checked, chain.head_hash,
                           f"{chain.checked} entries intact; every sealed record matches its seal")

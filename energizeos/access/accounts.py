"""Accounts and login sessions, kept in the records database.

- Passwords are stored only as Argon2id hashes; there is no default password: the first start
  creates ``admin`` with a random password that is printed once (``ensure_first_admin``).
- ``lockout_after`` wrong passwords in a row lock the account for ``lockout_min`` minutes.
- A session ends after ``session_idle_min`` without use or ``session_max_h`` after login, at logout,
  or when its user is disabled or given a new password. Only its token's SHA-256 is stored.
- A role change applies from the next action: every action reads the role as stored now.
- Logins (good and bad), lockouts, logouts and every change to an account go on the audit chain.

Every function takes ``now`` so the rules are testable without waiting.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.access.passwords import burn_time, hash_password, random_password, verify_password
from energizeos.access.permissions import PermissionDenied, Principal, require
from energizeos.records import audit
from energizeos.records.models import ROLES, User, UserSession
from energizeos.site_config import AccessPolicy

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
FIRST_ADMIN = "admin"


class AccountError(ValueError):
    """A request about an account that cannot be done (names the reason)."""


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    message: str
    token: str = ""
    principal: Principal | None = None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1e9)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_rule(password: str, policy: AccessPolicy) -> None:
    if len(password) < policy.min_password_length:
        raise AccountError(f"the password is {len(password)} characters; at least "
                           f"{policy.min_password_length} are needed")


def _get(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


# --- accounts ---------------------------------------------------------------------------------------
def create_user(engine: Engine, actor: Principal | None, username: str, role: str, password: str | None = None,
                display_name: str = "", organisation: str = "", policy: AccessPolicy | None = None,
                now: datetime | None = None) -> str:
    """Add an account; returns its password (a random one when none is given: show it once).
    ``actor`` None is the console (``energizeos users add`` on the edge PC itself)."""
    policy = policy or AccessPolicy()
    if actor is not None:
        require(actor, "manage_users")
    if not USERNAME.match(username):
        raise AccountError(f"user name {username!r}: 2-32 characters, lower-case letters, digits, '.', '_' or '-', "
                           "starting with a letter")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    password = password if password is not None else random_password()
    check_password_rule(password, policy)
    when = _now(now)

    def add(session: Session) -> None:
        if _get(session, username) is not None:
            raise AccountError(f"user {username!r} already exists")
        session.add(User(username=username, role=role, password_hash=hash_password(password),
                         display_name=display_name, organisation=organisation, created_at=when))

    audit.append_committed(engine, "user", actor.username if actor else "console", f"user:{username}",
                           {"change": "created", "role": role, "organisation": organisation}, _ns(when), add)
    return password


def ensure_first_admin(engine: Engine, now: datetime | None = None) -> str | None:
    """On a site without any admin, create ``admin`` with a random password and return it (print it once);
    None when an admin exists."""
    with Session(engine) as session:
        if session.exec(select(User).where(User.role == "admin")).first() is not None:
            return None
    try:
        return create_user(engine, None, FIRST_ADMIN, "admin", now=now)
    except AccountError:  # an 'admin' account exists with another role: leave it, ask for `users add`
        return None


def _change(engine: Engine, actor: Principal | None, username: str, change: dict, apply, now: datetime | None,
            end_sessions: str = "") -> None:
    if actor is not None:
        require(actor, "manage_users")
    when = _now(now)

    def edit(session: Session) -> None:
        user = _get(session, username)
        if user is None:
            raise AccountError(f"unknown user {username!r}")
        apply(user)
        session.add(user)
        if end_sessions:
            _end_sessions(session, username, end_sessions, when)

    audit.append_committed(engine, "user", actor.username if actor else "console", f"user:{username}",
                           change, _ns(when), edit)


def set_role(engine: Engine, actor: Principal | None, username: str, role: str, now: datetime | None = None) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if actor is not None and actor.username == username and role != "admin":
        raise AccountError("an admin cannot take away their own admin role (ask another admin)")

    def apply(user: User) -> None:
        user.role = role
    # sessions stay open: every action reads the role as stored now, so the change applies at once
    _change(engine, actor, username, {"change": "role", "role": role}, apply, now)


def set_disabled(engine: Engine, actor: Principal | None, username: str, disabled: bool,
                 now: datetime | None = None) -> None:
    if actor is not None and actor.username == username and disabled:
        raise AccountError("an admin cannot disable their own account")

    def apply(user: User) -> None:
        user.disabled = disabled
    _change(engine, actor, username, {"change": "disabled" if disabled else "enabled"}, apply, now,
            end_sessions="disabled" if disabled else "")


def unlock(engine: Engine, actor: Principal | None, username: str, now: datetime | None = None) -> None:
    def apply(user: User) -> None:
        user.failed_logins, user.locked_until = 0, None
    _change(engine, actor, username, {"change": "unlocked"}, apply, now)


def set_password(engine: Engine, actor: Principal | None, username: str, password: str | None = None,
                 policy: AccessPolicy | None = None, now: datetime | None = None) -> str:
    """A new password (random when none is given); ends the user's sessions."""
    password = password if password is not None else random_password()
    check_password_rule(password, policy or AccessPolicy())
    digest = hash_password(password)

    def apply(user: User) -> None:
        user.password_hash, user.failed_logins, user.locked_until = digest, 0, None
    _change(engine, actor, username, {"change": "password"}, apply, now, end_sessions="password-changed")
    return password


def list_users(engine: Engine) -> list[User]:
    with Session(engine) as session:
        return list(session.exec(select(User).order_by(User.username)).all())


# --- sessions ---------------------------------------------------------------------------------------
def login(engine: Engine, username: str, password: str, policy: AccessPolicy | None = None,
          now: datetime | None = None) -> LoginResult:
    """Check a password; on success open a session and return its token (kept by the browser session only)."""
    policy = policy or AccessPolicy()
    when = _now(now)
    username = username.strip().lower()
    refused = LoginResult(False, "wrong user name or password")  # the same words for either: no name probing
    with Session(engine) as session:
        user = _get(session, username)
    if user is None:
        burn_time(password)
        audit.append_committed(engine, "login", username[:32] or "(empty)", "login",
                               {"result": "refused", "why": "unknown user"}, _ns(when))
        return refused
    # a disabled or locked account says so only to someone who knows its password: no probing for names
    if user.disabled or (user.locked_until is not None and user.locked_until > when):
        why = "account disabled" if user.disabled else "locked"
        knows = verify_password(user.password_hash, password)
        audit.append_committed(engine, "login", username, f"user:{username}",
                               {"result": "refused", "why": why + ("" if knows else ", wrong password")}, _ns(when))
        if not knows:
            return refused
        if user.disabled:
            return LoginResult(False, "this account is disabled; ask an administrator")
        minutes = (user.locked_until - when).total_seconds() / 60
        return LoginResult(False, f"too many wrong passwords: this account is locked for {minutes:.0f} more "
                                  "minute(s), or until an administrator unlocks it")
    if not verify_password(user.password_hash, password):
        failed = (user.failed_logins if user.locked_until is None or user.locked_until > when else 0) + 1
        locked = failed >= policy.lockout_after
        locked_until = when + timedelta(minutes=policy.lockout_min) if locked else None

        def count(session: Session) -> None:
            account = _get(session, username)
            account.failed_logins, account.locked_until = (0, locked_until) if locked else (failed, None)
            session.add(account)
        audit.append_committed(engine, "login", username, f"user:{username}",
                               {"result": "locked" if locked else "refused", "why": "wrong password",
                                "failures": failed}, _ns(when), count)
        if locked:
            return LoginResult(False, f"too many wrong passwords: this account is locked for "
                                      f"{policy.lockout_min:.0f} minutes")
        return refused
    token = secrets.token_urlsafe(32)
    digest = token_digest(token)

    def open_session(session: Session) -> None:
        account = _get(session, username)
        account.failed_logins, account.locked_until = 0, None
        session.add(account)
        session.add(UserSession(token_sha256=digest, username=username, created_at=when, last_seen_at=when,
                                expires_at=when + timedelta(hours=policy.session_max_h)))
    audit.append_committed(engine, "login", username, f"user:{username}", {"result": "ok", "role": user.role},
                           _ns(when), open_session)
    with Session(engine) as session:
        stored = session.exec(select(UserSession).where(UserSession.token_sha256 == digest)).one()
    return LoginResult(True, f"logged in as {username} ({user.role})", token,
                       Principal(username, user.role, stored.id or 0))


def resume(engine: Engine, token: str, policy: AccessPolicy | None = None, now: datetime | None = None,
           touch: bool = True) -> Principal:
    """The principal of a live session, with the role as stored now; PermissionDenied naming why otherwise.
    ``touch`` restarts the idle clock (a user action); a page refresh by a timer does not."""
    policy = policy or AccessPolicy()
    when = _now(now)
    if not token:
        raise PermissionDenied("not logged in")
    with Session(engine) as session:
        record = session.exec(select(UserSession).where(UserSession.token_sha256 == token_digest(token))).first()
        if record is None:
            raise PermissionDenied("unknown session: log in again")
        if record.ended_at is not None:
            raise PermissionDenied(f"the session has ended ({record.end_reason}): log in again")
        why = ""
        if when >= record.expires_at:
            why = "expired"
        elif when - record.last_seen_at > timedelta(minutes=policy.session_idle_min):
            why = "idle"
        user = _get(session, record.username)
        if not why and (user is None or user.disabled):
            why = "disabled"
        if why:
            record.ended_at, record.end_reason = when, why
            session.add(record)
            session.commit()
            raise PermissionDenied(f"the session has ended ({why}): log in again")
        if touch:
            record.last_seen_at = when
            session.add(record)
            session.commit()
        return Principal(user.username, user.role, record.id or 0)


def logout(engine: Engine, token: str, now: datetime | None = None) -> None:
    when = _now(now)
    with Session(engine) as session:
        record = session.exec(select(UserSession).where(UserSession.token_sha256 == token_digest(token))).first()
    if record is None or record.ended_at is not None:
        return

    def end(session: Session) -> None:
        live = session.get(UserSession, record.id)
        live.ended_at, live.end_reason = when, "logout"
        session.add(live)
    audit.append_committed(engine, "login", record.username, f"user:{record.username}", {"result": "logout"},
                           _ns(when), end)


def _end_sessions(session: Session, username: str, reason: str, when: datetime) -> None:
    for live in session.exec(select(UserSession).where(UserSession.username == username,
                                                        UserSession.ended_at.is_(None))).all():  # type: ignore[union-attr]
        live.ended_at, live.end_reason = when, reason
        session.add(live)

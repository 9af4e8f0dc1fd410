"""Accounts, login sessions and permissions (energizeos/access/): hashes only, lock-out, expiry, roles read
at every action, the first admin, and the audit trail of it all."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from energizeos.access import accounts
from energizeos.access.permissions import PERMISSIONS, PermissionDenied, Principal, allowed, require
from energizeos.records import audit
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import ROLES, User, UserSession
from energizeos.site_config import AccessPolicy
from tests.conftest import ENERGIZEOS

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
GOOD = "a long enough password"
POLICY = AccessPolicy(session_idle_min=30, session_max_h=12, lockout_after=5, lockout_min=15)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    init_db(engine)
    return engine


def user(engine, name: str) -> User:
    with Session(engine) as session:
        return session.exec(select(User).where(User.username == name)).one()


def audit_kinds(engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        return [(e.kind, e.actor, e.payload_json) for e in session.exec(select(audit.AuditEntry)
                                                                        .order_by(audit.AuditEntry.seq))]


def test_passwords_are_stored_as_argon2_hashes_only(engine):
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    stored = user(engine, "ops").password_hash
    assert stored.startswith("$argon2id$") and GOOD not in stored
    assert accounts.login(engine, "ops", GOOD, POLICY, T0).ok
    assert not accounts.login(engine, "ops", GOOD + "x", POLICY, T0).ok


def test_the_first_admin_gets_a_random_password_once(engine):
    first = accounts.ensure_first_admin(engine, T0)
    assert first is not None and len(first) >= 16
    assert accounts.ensure_first_admin(engine, T0) is None  # an admin exists: nothing printed again
    assert accounts.login(engine, "admin", first, POLICY, T0).principal.role == "admin"
    other = make_engine(str(engine.url).replace("r.db", "r2.db"))
    init_db(other)
    assert accounts.ensure_first_admin(other, T0) != first  # random, not a default


def test_wrong_passwords_lock_the_account_then_it_opens_again(engine):
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    for i in range(4):
        result = accounts.login(engine, "ops", "wrong password!", POLICY, T0 + timedelta(seconds=i))
        assert result.message == "wrong user name or password"
    locked = accounts.login(engine, "ops", "wrong password!", POLICY, T0 + timedelta(seconds=5))
    assert "locked for 15 minutes" in locked.message
    refused = accounts.login(engine, "ops", GOOD, POLICY, T0 + timedelta(minutes=14))  # the right one, too early
    assert not refused.ok and "locked for 1 more minute(s)" in refused.message
    probe = accounts.login(engine, "ops", "a guess at it!", POLICY, T0 + timedelta(minutes=14))
    assert probe.message == "wrong user name or password"  # the lock is not told to someone guessing
    assert accounts.login(engine, "ops", GOOD, POLICY, T0 + timedelta(minutes=16)).ok
    assert user(engine, "ops").failed_logins == 0
    kinds = [(k, a) for k, a, _ in audit_kinds(engine)]
    assert kinds.count(("login", "ops")) == 8  # 4 refused, 1 locked, 2 refused while locked, 1 ok


def test_an_admin_can_unlock_and_an_unknown_name_reads_like_a_wrong_password(engine):
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    for _ in range(5):
        accounts.login(engine, "ops", "nope nope nope", POLICY, T0)
    assert not accounts.login(engine, "ops", GOOD, POLICY, T0).ok
    accounts.unlock(engine, None, "ops", T0)
    assert accounts.login(engine, "ops", GOOD, POLICY, T0).ok
    assert accounts.login(engine, "nobody", GOOD, POLICY, T0).message == "wrong user name or password"


def test_sessions_end_when_idle_at_their_limit_and_at_logout(engine):
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    token = accounts.login(engine, "ops", GOOD, POLICY, T0).token
    assert accounts.resume(engine, token, POLICY, T0 + timedelta(minutes=29)).username == "ops"
    # a timer refresh (touch=False) does not keep a session alive
    assert accounts.resume(engine, token, POLICY, T0 + timedelta(minutes=50), touch=False)  # 21 min idle
    with pytest.raises(PermissionDenied, match="idle"):  # 31 min after the last user action at minute 29
        accounts.resume(engine, token, POLICY, T0 + timedelta(minutes=60), touch=False)
    with pytest.raises(PermissionDenied, match="ended"):  # and it stays ended
        accounts.resume(engine, token, POLICY, T0 + timedelta(minutes=61))

    token = accounts.login(engine, "ops", GOOD, POLICY, T0).token
    for minutes in range(20, 12 * 60, 20):  # used every 20 minutes: still ends 12 h after login
        accounts.resume(engine, token, POLICY, T0 + timedelta(minutes=minutes))
    with pytest.raises(PermissionDenied, match="expired"):
        accounts.resume(engine, token, POLICY, T0 + timedelta(hours=12))

    token = accounts.login(engine, "ops", GOOD, POLICY, T0).token
    accounts.logout(engine, token, T0 + timedelta(minutes=1))
    with pytest.raises(PermissionDenied, match="logout"):
        accounts.resume(engine, token, POLICY, T0 + timedelta(minutes=2))
    with Session(engine) as session:  # the token itself is nowhere in the database
        assert all(s.token_sha256 != token and len(s.token_sha256) == 64 for s in session.exec(select(UserSession)))


def test_a_disabled_user_or_a_new_password_ends_the_session_and_a_role_change_applies_at_once(engine):
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    token = accounts.login(engine, "ops", GOOD, POLICY, T0).token
    accounts.set_role(engine, None, "ops", "viewer", T0)
    who = accounts.resume(engine, token, POLICY, T0)
    assert who.role == "viewer" and not allowed(who.role, "acknowledge_alarm")
    accounts.set_disabled(engine, None, "ops", True, T0)
    with pytest.raises(PermissionDenied, match="disabled"):
        accounts.resume(engine, token, POLICY, T0)
    assert "disabled" in accounts.login(engine, "ops", GOOD, POLICY, T0).message
    assert accounts.login(engine, "ops", "a guess at it!", POLICY, T0).message == "wrong user name or password"
    accounts.set_disabled(engine, None, "ops", False, T0)
    token = accounts.login(engine, "ops", GOOD, POLICY, T0).token
    new = accounts.set_password(engine, None, "ops", now=T0)
    with pytest.raises(PermissionDenied, match="password-changed"):
        accounts.resume(engine, token, POLICY, T0)
    assert accounts.login(engine, "ops", new, POLICY, T0).ok and not accounts.login(engine, "ops", GOOD, POLICY, T0).ok


def test_account_rules_name_what_is_wrong(engine):
    with pytest.raises(accounts.AccountError, match="at least 12"):
        accounts.create_user(engine, None, "ops", "operator", "short", now=T0)
    with pytest.raises(accounts.AccountError, match="unknown role 'superuser'"):
        accounts.create_user(engine, None, "ops", "superuser", GOOD, now=T0)
    with pytest.raises(accounts.AccountError, match="user name 'Bad Name'"):
        accounts.create_user(engine, None, "Bad Name", "viewer", GOOD, now=T0)
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.create_user(engine, None, "ops", "viewer", GOOD, now=T0)
    admin = Principal("root", "admin")
    with pytest.raises(accounts.AccountError, match="own admin role"):
        accounts.set_role(engine, admin, "root", "viewer", T0)


def test_only_admins_manage_users_and_the_refusal_names_the_permission(engine):
    operator = Principal("ops", "operator")
    with pytest.raises(PermissionDenied, match=r"ops \(role operator\) may not manage users: that needs one of admin"):
        accounts.create_user(engine, operator, "eve", "admin", GOOD, now=T0)
    assert accounts.list_users(engine) == []


def test_the_permission_table_matches_the_roles():
    assert set().union(*PERMISSIONS.values()) == set(ROLES)
    assert PERMISSIONS["view"] == frozenset(ROLES)
    assert {r for r in ROLES if allowed(r, "acknowledge_alarm")} == {"operator", "engineer", "admin"}
    with pytest.raises(KeyError):
        allowed("admin", "launch_missiles")
    require(Principal("w", "viewer"), "view")
    with pytest.raises(PermissionDenied):
        require(Principal("w", "viewer"), "decide_plan")


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lock") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    accounts.create_user(engine, None, "ops", "operator", GOOD, now=T0)
    engine.dispose()
    return path


@settings(max_examples=25, deadline=None)
@given(attempts=st.lists(st.tuples(st.booleans(), st.integers(0, 600)), min_size=1, max_size=12))
def test_lockout_invariant(template_db, attempts):
    """Whatever the sequence of attempts: a good password is accepted exactly when the account is not
    locked, and it is locked exactly after ``lockout_after`` wrong passwords in a row (within the lock)."""
    path = template_db.with_name(f"run-{uuid.uuid4().hex}.db")
    shutil.copy(template_db, path)
    engine = make_engine(f"sqlite:///{path}")
    policy = AccessPolicy(lockout_after=3, lockout_min=10)
    now, streak, locked_until = T0, 0, None
    for good, gap_s in attempts:
        now += timedelta(seconds=gap_s)
        result = accounts.login(engine, "ops", GOOD if good else "wrong password!!", policy, now)
        is_locked = locked_until is not None and now < locked_until
        if is_locked:
            assert not result.ok
            continue
        if good:
            assert result.ok
            streak = 0
        else:
            assert not result.ok
            streak += 1
            if streak >= policy.lockout_after:
                locked_until, streak = now + timedelta(minutes=10), 0
    engine.dispose()
    path.unlink()


def test_the_users_command_adds_lists_and_refuses_bad_input(tmp_path):
    env = {"ENERGIZEOS_DB_URL": f"sqlite:///{tmp_path / 'r.db'}", "PATH": "/usr/bin:/bin"}
    made = subprocess.run([ENERGIZEOS, "users", "add", "witness", "--role", "viewer", "--organisation", "SDG&E"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    password = made.stdout.split("password (shown once): ")[1].strip()
    listed = subprocess.run([ENERGIZEOS, "users", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert "witness" in listed.stdout and "viewer" in listed.stdout and password not in listed.stdout
    bad = subprocess.run([ENERGIZEOS, "users", "add", "x2", "--role", "god"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.returncode == 2 and "unknown role 'god'" in bad.stderr
    engine = make_engine(env["ENERGIZEOS_DB_URL"])
    assert accounts.login(engine, "witness", password, POLICY).principal.role == "viewer"

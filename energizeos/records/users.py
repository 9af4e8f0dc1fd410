"""Who may do what: the roles' permissions, checked against the users in the records on every request
(server side, whatever a screen shows)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.access.permissions import OPERATING_ROLES  # acknowledge/shelve alarms, approve plans
from energizeos.records.models import User


def authorize(engine: Engine, user: str, action: str,
              allowed: frozenset[str] = OPERATING_ROLES) -> tuple[str | None, str]:
    """(the user's role, "") when ``user`` may do ``action``; (role or None, why not) otherwise.
    A database error propagates: the caller refuses and says so."""
    with Session(engine) as session:
        account = session.exec(select(User).where(User.username == user)).first()
    if account is None:
        return None, f"unknown user {user!r}"
    if account.disabled:
        return account.role, f"account {user!r} is disabled"
    if account.role not in allowed:
        return account.role, f"role {account.role!r} may not {action} (needs one of {sorted(allowed)})"
    return account.role, ""

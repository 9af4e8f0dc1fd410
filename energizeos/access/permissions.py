"""The roles' permissions: one table, read by the app's actions and by the nodes that take requests."""

from __future__ import annotations

from dataclasses import dataclass

READ_ROLES = frozenset({"viewer", "owner", "epc", "integrator", "operator", "engineer", "admin"})
OPERATING_ROLES = frozenset({"operator", "engineer", "admin"})

# permission -> roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": READ_ROLES,  # every page, the assistant, report downloads
    "acknowledge_alarm": OPERATING_ROLES,
    "shelve_alarm": OPERATING_ROLES,
    "decide_plan": OPERATING_ROLES,  # approve or reject a proposed plan
    "edit_settings": frozenset({"engineer", "admin"}),
    "commission": frozenset({"engineer", "admin"}),
    "witness": frozenset({"epc", "engineer", "admin"}),  # sign off a commissioning run
    "manage_users": frozenset({"admin"}),
}


class PermissionDenied(PermissionError):
    """The user's role does not hold the permission (or the session is no longer valid)."""


@dataclass(frozen=True)
class Principal:
    """Who is acting: read from the database on every action, never from what the page remembers."""

    username: str
    role: str
    session_id: int = 0


def allowed(role: str, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return role in PERMISSIONS[permission]


def require(principal: Principal, permission: str) -> None:
    if not allowed(principal.role, permission):
        holders = ", ".join(sorted(PERMISSIONS[permission]))
        raise PermissionDenied(f"{principal.username} (role {principal.role}) may not {permission.replace('_', ' ')}: "
                               f"that needs one of {holders}")

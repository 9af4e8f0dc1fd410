"""Overview: the site now — power flows, SOC, breaker, the interlock chain as lamps, active alarms by
priority, the dispatch mode and the arbiter's last decision. Live values refresh every
``ui.refresh_s`` seconds without a page reload; a value from stale or invalid data is never shown.
"""

from __future__ import annotations

import time

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from energizeos.records.db import error_line
from energizeos.ui import context
from energizeos.ui.alarm_view import PRIORITY, active_counts

STALE_AFTER_S = 5.0
SITE_TOPICS = {"/site/poi/meter": "energizeos_msgs/msg/MeterReading",
               "/site/poi/relay": "energizeos_msgs/msg/RelayStatus",
               "/bess/bms/status": "energizeos_msgs/msg/BmsStatus",
               "/bess/pcs/status": "energizeos_msgs/msg/PcsStatus",
               "/ems/arbiter/decision": "energizeos_msgs/msg/ArbiterDecision",
               "/ems/dispatch/request": "energizeos_msgs/msg/DispatchRequest"}
OUTCOME = {0: "granted", 1: "clipped", 2: "REFUSED"}
QUALITY = {0: "good", 1: "INVALID", 2: "STALE"}
BREAKER = {0: "OPEN", 1: "closed", 2: "UNKNOWN"}
LAMPS_PER_ROW = 5
MODE = {0: "standby", 1: "peak shaving", 2: "export limiting", 3: "following the plan", 4: "manual"}

view = context.graph()
view.watch("/ems/graph/health", "energizeos_msgs/msg/GraphHealth", latched=True)
view.watch("/ems/arbiter/interlocks", "energizeos_msgs/msg/InterlockState", latched=True)
for _topic, _type in SITE_TOPICS.items():
    view.watch(_topic, _type)


def fresh(topic: str) -> tuple[dict | None, str]:
    """(message, caption): the message only when it is recent and its quality is good."""
    sample = view.sample(topic)
    if sample is None:
        return None, "no data yet"
    age = time.time() - sample.received_at
    quality = QUALITY.get(sample.data.get("quality", 0), "?")
    if quality != "good" or age > STALE_AFTER_S:
        return None, f"{quality if quality != 'good' else 'STALE'}, {age:.0f} s old"
    return sample.data, f"{age:.1f} s old"


def kw(data: dict | None, field: str) -> str:
    return "—" if data is None else f"{data[field]:,.1f} kW"


def session_still_valid() -> bool:
    """A timer refresh is not a user action: it checks the session without keeping it alive."""
    if context.principal(touch=False) is None:
        st.rerun(scope="app")
    return True


@st.fragment(run_every=context.site_config().ui.refresh_s)
def power_flows() -> None:
    session_still_valid()
    meter, meter_note = fresh("/site/poi/meter")
    pcs, pcs_note = fresh("/bess/pcs/status")
    bms, bms_note = fresh("/bess/bms/status")
    cols = st.columns(5)
    cols[0].metric("Grid (POI)", kw(meter, "p_kw"),
                   help="revenue meter at the point of interconnection: import +, export -")
    cols[0].caption(meter_note)
    cols[1].metric("Battery", kw(pcs, "p_kw"), help="PCS AC power: discharge +, charge -")
    cols[1].caption(pcs_note)
    load = None if meter is None or pcs is None else {"p": meter["p_kw"] + pcs["p_kw"]}
    cols[2].metric("Site load", kw(load, "p"),
                   help="POI + battery, computed; net of any PV behind the meter (no PV meter here)")
    cols[2].caption("from the two readings above" if load else "needs both readings")
    cols[3].metric("State of charge", "—" if bms is None else f"{bms['soc_pct']:.1f} %")
    cols[3].caption(bms_note)
    relay, relay_note = fresh("/site/poi/relay")
    breaker = "—" if relay is None else BREAKER.get(relay["breaker_state"], "?")
    if relay and (relay["trip"] or relay["lockout_86"]):
        breaker += " · TRIP" + (" · 86 LOCKOUT" if relay["lockout_86"] else "")
    cols[4].metric("POI breaker", breaker)
    cols[4].caption(relay_note)
    interlock_lamps()
    dispatch_line()


def interlock_lamps() -> None:
    sample = view.sample("/ems/arbiter/interlocks")
    st.markdown("**Interlock chain** — every lamp must be green before the arbiter grants power")
    if sample is None:
        st.warning("No interlock state from the safety arbiter yet.")
        return
    data = sample.data
    permissives = data["permissives"]
    for start in range(0, len(permissives), LAMPS_PER_ROW):
        cols = st.columns(LAMPS_PER_ROW)
        for col, p in zip(cols, permissives[start:start + LAMPS_PER_ROW], strict=False):
            # colored text, not emoji: the edge PC's browser may have no emoji font
            lamp = ":green[● OK]" if p["ok"] else ":red[● NO]"
            age = "never" if p["age_s"] < 0 else f"{p['age_s']:.1f} s old"
            col.markdown(f"{lamp} `{p['name']}`  \n{p['value']}  \n:gray[{age}]")
    relay = view.sample("/site/poi/relay")
    if relay is not None and relay.data["breaker_state"] == 1:
        close = "breaker closed"  # a close request would be refused as not needed: not a fault
    else:
        close = "close permitted" if data["close_permitted"] else ":red[close NOT permitted]"
    verdict = ("dispatch permitted" if data["dispatch_permitted"] else ":red[dispatch NOT permitted]") + " · " + close
    st.caption(f"{verdict} · evaluated {time.time() - sample.received_at:.1f} s ago")


def dispatch_line() -> None:
    request = view.sample("/ems/dispatch/request")
    decision = view.sample("/ems/arbiter/decision")
    mode = "—" if request is None else MODE.get(request.data["mode"], "?")
    text = f"**Dispatch mode:** {mode}"
    if request is not None and request.data["reason"]:
        text += f" — {request.data['reason']}"
    st.markdown(text)
    if decision is None:
        st.caption("No arbiter decision yet.")
        return
    d = decision.data
    why = "; ".join(d["reason_texts"]) or "within every limit"
    st.markdown(f"**Safety arbiter's last decision** (no. {d['decision_id']}): requested {d['requested_kw']:.1f} kW, "
                f"**{OUTCOME.get(d['outcome'], '?')} {d['granted_kw']:.1f} kW** — {why}")


@st.fragment(run_every=max(2.0, context.site_config().ui.refresh_s))
def alarm_counts() -> None:
    st.subheader("Active alarms")
    try:
        counts = active_counts(context.records())
    except SQLAlchemyError as exc:  # the page stays up while the records are away
        st.warning(f"Records not readable yet: {error_line(exc)}")
        return
    cols = st.columns(len(PRIORITY))
    for col, (priority, label) in zip(cols, PRIORITY.items(), strict=True):
        n = counts.get(priority, 0)
        col.metric(label, n)
    if not any(counts.values()):
        st.success("No active alarms")
    else:
        st.page_link("views/alarms.py", label="Open the alarm list")


@st.fragment(run_every=5.0)
def graph_health() -> None:
    health = view.sample("/ems/graph/health")
    with st.expander("Node graph", expanded=False):
        if health is None:
            st.warning("No report from site_monitor yet.")
            return
        data = health.data
        age = time.time() - health.received_at
        if age > STALE_AFTER_S:  # a dead monitor must not leave a green lamp behind
            st.error(f"No report from site_monitor for {age:.0f} s: graph health unknown")
        elif data["healthy"]:
            count = len(data["expected_nodes"])
            st.success(f"All {count} expected node{'s' if count != 1 else ''} alive")
        else:
            st.error("Missing: " + ", ".join(data["missing_nodes"]))
        nodes = [f"{ns.rstrip('/')}/{name}" for name, ns in view.executor.graph_nodes() if name != "ui"]
        st.dataframe({"node": nodes}, hide_index=True, width="stretch")


st.title(f"{context.site_config().site} — overview")
power_flows()
alarm_counts()
graph_health()

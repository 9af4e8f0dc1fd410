"""EnergizeOS operator app (Streamlit). Run: ``streamlit run ui/app.py`` (launch does it for you).

This first page shows the site now (POI, BESS, SOC, breaker, the arbiter's last decision and the
interlock chain), the open alarms from the records, and the live node graph. Pages for alarm
actions, reports, plans and the assistant land with their issues.
"""

from __future__ import annotations

import time

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from energizeos.records.db import error_line, make_engine
from energizeos.ui.alarm_view import open_alarms
from energizeos.ui.graph_view import GraphView, open_graph_view

st.set_page_config(page_title="EnergizeOS", layout="wide", menu_items={})
STALE_AFTER_S = 5.0
SITE_TOPICS = {"/site/poi/meter": "energizeos_msgs/msg/MeterReading",
               "/site/poi/relay": "energizeos_msgs/msg/RelayStatus",
               "/bess/bms/status": "energizeos_msgs/msg/BmsStatus",
               "/bess/pcs/status": "energizeos_msgs/msg/PcsStatus",
               "/ems/arbiter/decision": "energizeos_msgs/msg/ArbiterDecision"}
OUTCOME = {0: "granted", 1: "clipped", 2: "refused"}


@st.cache_resource
def graph_view() -> GraphView:
    return open_graph_view()


@st.cache_resource
def records():
    return make_engine()


st.title("EnergizeOS — simulated site")
view = graph_view()
view.watch("/ems/graph/health", "energizeos_msgs/msg/GraphHealth", latched=True)
for topic, type_name in SITE_TOPICS.items():
    view.watch(topic, type_name)
view.watch("/ems/arbiter/interlocks", "energizeos_msgs/msg/InterlockState", latched=True)
QUALITY = {0: "good", 1: "INVALID", 2: "STALE"}
BREAKER = {0: "OPEN", 1: "closed", 2: "UNKNOWN"}


def _value(topic: str, field: str, unit: str, fmt: str = "{:.1f}") -> tuple[str, str]:
    """(value text, caption) for a site metric; never shows a number from stale or invalid data."""
    sample = view.sample(topic)
    if sample is None:
        return "—", "no data yet"
    quality = QUALITY.get(sample.data.get("quality", 2), "?")
    age = time.time() - sample.received_at
    if quality != "good" or age > STALE_AFTER_S:
        return "—", f"{quality if quality != 'good' else 'STALE'}, {age:.0f} s old"
    return f"{fmt.format(sample.data[field])} {unit}".strip(), f"{age:.1f} s old"


@st.fragment(run_every=1.0)
def live_site() -> None:
    st.subheader("Site now")
    cols = st.columns(5)
    poi, poi_note = _value("/site/poi/meter", "p_kw", "kW")
    cols[0].metric("POI import (+) / export (-)", poi, help="revenue meter at the point of interconnection")
    cols[0].caption(poi_note)
    bess, bess_note = _value("/bess/pcs/status", "p_kw", "kW")
    cols[1].metric("BESS discharge (+) / charge (-)", bess)
    cols[1].caption(bess_note)
    soc, soc_note = _value("/bess/bms/status", "soc_pct", "%")
    cols[2].metric("State of charge", soc)
    cols[2].caption(soc_note)
    relay = view.sample("/site/poi/relay")
    breaker = BREAKER.get(relay.data["breaker_state"], "?") if relay else "—"
    if relay and (relay.data["trip"] or relay.data["lockout_86"]):
        breaker += " · TRIP" + (" · 86 LOCKOUT" if relay.data["lockout_86"] else "")
    cols[3].metric("POI breaker", breaker)
    bms = view.sample("/bess/bms/status")
    ready = "—" if bms is None else ("ready" if bms.data["permissive"] else "NOT READY")
    cols[4].metric("BMS permissive", ready)

    decision = view.sample("/ems/arbiter/decision")
    if decision is not None:
        d = decision.data
        why = "; ".join(d["reason_texts"]) or "within every limit"
        st.markdown(f"**Safety arbiter** — requested {d['requested_kw']:.1f} kW, "
                    f"**{OUTCOME.get(d['outcome'], '?')} {d['granted_kw']:.1f} kW**: {why}")
    interlocks = view.sample("/ems/arbiter/interlocks")
    if interlocks is not None:
        # colored text, not emoji: the edge PC's browser may have no emoji font
        lamps = [f"{':green[● OK]' if p['ok'] else ':red[● NO]'} `{p['name']}` {p['value']}"
                 for p in interlocks.data["permissives"]]
        st.caption("Interlock chain: " + " · ".join(lamps))


@st.fragment(run_every=2.0)
def live_alarms() -> None:
    st.subheader("Open alarms")
    try:
        rows = open_alarms(records())
    except SQLAlchemyError as exc:  # the page stays up while the records are away
        st.warning(f"Records not readable yet: {error_line(exc)}")
        return
    if not rows:
        st.success("No open alarms")
        return
    st.dataframe(rows, hide_index=True, width="stretch")


@st.fragment(run_every=2.0)
def live_graph() -> None:
    health = view.sample("/ems/graph/health")
    col_health, col_nodes = st.columns([1, 2])
    with col_health:
        st.subheader("Graph health")
        if health is None:
            st.warning("No report from site_monitor yet.")
        else:
            data = health.data
            age = time.time() - health.received_at
            if age > STALE_AFTER_S:  # a dead monitor must not leave a green lamp behind
                st.error(f"No report from site_monitor for {age:.0f} s: graph health unknown")
            elif data["healthy"]:
                count = len(data["expected_nodes"])
                st.success(f"All {count} expected node{'s' if count != 1 else ''} alive")
            else:
                st.error("Missing: " + ", ".join(data["missing_nodes"]))
            st.caption(f"last report received {age:.1f} s ago")
    with col_nodes:
        st.subheader("Nodes alive")
        nodes = [f"{ns.rstrip('/')}/{name}" for name, ns in view.executor.graph_nodes() if name != "ui"]
        st.dataframe({"node": nodes}, hide_index=True, width="stretch")

    st.subheader("Topics")
    topics = view.executor.graph_topics()
    st.dataframe({"topic": [t for t, _ in topics], "type": [", ".join(ts) for _, ts in topics]},
                 hide_index=True, width="stretch")
    names = [t for t, _ in topics]
    if names:
        chosen = st.selectbox("Latest message on", names, key="echo_topic")
        view.watch(chosen, dict(topics)[chosen][0])
        sample = view.sample(chosen)
        if sample is None:
            st.info("Waiting for a message…")
        else:
            st.caption(f"{sample.count} received; newest {time.time() - sample.received_at:.1f} s ago")
            st.json(sample.data)


live_site()
live_alarms()
live_graph()

"""EnergizeOS operator app (Streamlit). Run: ``streamlit run ui/app.py`` (launch does it for you).

This first page shows the live node graph: which nodes are alive, the graph health published by
site_monitor, and the newest message on any topic. Pages for the site, alarms, reports, plans and
the assistant land with their issues.
"""

from __future__ import annotations

import time

import streamlit as st

from energizeos.ui.graph_view import GraphView, open_graph_view

st.set_page_config(page_title="EnergizeOS", layout="wide", menu_items={})
STALE_AFTER_S = 5.0


@st.cache_resource
def graph_view() -> GraphView:
    return open_graph_view()


st.title("EnergizeOS — site graph")
view = graph_view()
view.watch("/ems/graph/health", "energizeos_msgs/msg/GraphHealth", latched=True)


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


live_graph()

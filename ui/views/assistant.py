"""Assistant: ask about alarms and performance in plain words. Answers come from the records and the
knowledge base, with citations that open what they cite. With an LLM configured the text streams in
as it is generated; the checked answer (grounding guard) is what stays on the page."""

from __future__ import annotations

import queue
import threading

import streamlit as st

from energizeos.ui import context
from energizeos.ui.actions import ActionResult
from energizeos.ui.citations import show_answer

HISTORY = "assistant_history"
EXAMPLES = ("What alarms are active and what should I do?", "Why did the battery stop discharging?",
            "What was yesterday's peak and what did the battery save?")

st.title("Assistant")
llm = context.site_config().assistant
st.caption(("Answers from the records and the procedures; an LLM at "
            f"{llm.llm_base_url} words them, checked against the evidence.") if llm.llm_base_url else
           "Answers from the records and the procedures (offline: no language model configured).")
history: list[dict] = st.session_state.setdefault(HISTORY, [])


def ask_streaming(question: str) -> ActionResult:
    """Show the text while the assistant node generates it; return the checked answer."""
    pieces: queue.Queue[str | None] = queue.Queue()
    box: dict[str, ActionResult] = {}
    token, actions = context.token(), context.actions()  # read here: the thread has no Streamlit context

    def run() -> None:
        try:
            box["result"] = actions.ask(token, question, on_text=pieces.put)
        finally:
            pieces.put(None)
    threading.Thread(target=run, name="assistant-ask", daemon=True).start()

    def stream():
        while (piece := pieces.get()) is not None:
            yield piece
    slot = st.empty()
    with slot.container():
        st.write_stream(stream())
    slot.empty()  # the checked answer replaces what was streamed
    return box.get("result") or ActionResult(False, "the assistant did not answer")


def answer(question: str) -> ActionResult:
    if llm.llm_base_url:
        return ask_streaming(question)
    with st.spinner("Looking through the records..."):
        return context.actions().ask(context.token(), question)


for turn in history:
    with st.chat_message(turn["role"]):
        if turn["role"] == "user":
            st.markdown(turn["text"])
        elif turn["ok"]:
            show_answer(turn["text"], turn["data"])
        else:
            st.error(turn["text"])

if not history:
    st.markdown("Try: " + " · ".join(f"*{e}*" for e in EXAMPLES))
question = st.chat_input("Ask about an alarm, a decision, a plan or the site's performance")
if question:
    history.append({"role": "user", "text": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        result = answer(question)
        if result.ok:
            show_answer(result.message, result.data)
        else:
            st.error(result.message)
    history.append({"role": "assistant", "text": result.message, "ok": result.ok, "data": result.data})

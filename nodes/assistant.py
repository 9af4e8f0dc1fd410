"""assistant: answers operators' and managers' questions about alarms and performance on
``/ems/assistant/ask``, from the records and the knowledge base (see knowledge/assistant.py). It only
reads: nothing it does can reach the PCS or the breaker."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from energizeos import runtime
from energizeos.home import subdir
from energizeos.records.db import error_line, init_db, make_engine, redacted
from energizeos.runtime import Node, ParameterDescriptor
from energizeos_msgs.msg import AssistantText
from energizeos_msgs.srv import AskAssistant


class AssistantNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("assistant", **kwargs)
        from energizeos.knowledge.assistant import Assistant, LlmConfig

        p = self.declare_parameter
        url = p("db_url", "", ParameterDescriptor("records database; empty: the site default")).value
        tz = p("timezone", "America/Los_Angeles", ParameterDescriptor("site time zone")).value
        index_dir = p("index_dir", "", ParameterDescriptor("retrieval index; empty: $ENERGIZEOS_HOME/index")).value
        llm = LlmConfig(
            base_url=p("llm_base_url", "", ParameterDescriptor("OpenAI-compatible endpoint; empty: no LLM")).value,
            model=p("llm_model", "", ParameterDescriptor("model name at that endpoint")).value,
            api_key_env=p("llm_api_key_env", "ENERGIZEOS_LLM_API_KEY", ParameterDescriptor(
                "environment variable holding the endpoint's key")).value,
            timeout_s=p("llm_timeout_s", 20.0, ParameterDescriptor("LLM timeout", min_value=0.1,
                                                                   max_value=300.0)).value)
        retrieval = p("retrieval", "hybrid", ParameterDescriptor("hybrid | dense | bm25",
                                                                 choices=("hybrid", "dense", "bm25"))).value
        self.engine = make_engine(url or None)
        init_db(self.engine)
        self.assistant = Assistant(self.engine, tz, Path(index_dir) if index_dir else subdir("index"), llm,
                                   retrieval=retrieval)
        self.create_service(AskAssistant, "/ems/assistant/ask", self.on_ask)
        self.stream_pub = self.create_publisher(AssistantText, "/ems/assistant/stream", 100)
        mode = f"LLM {llm.model} at {llm.base_url}" if llm.enabled else "offline (deterministic composer)"
        self.get_logger().info(f"answering from {redacted(self.engine)}, {mode}")

    def on_ask(self, request: AskAssistant.Request, response: AskAssistant.Response) -> AskAssistant.Response:
        try:
            streamer = self._streamer(request.stream_id) if request.stream_id else None
            answer = self.assistant.ask(request.question, self.get_clock().now().to_datetime(), streamer)
            if streamer is not None:
                streamer("", last=True)  # the app waits for this before it stops listening
        except ValueError as exc:
            response.error = str(exc)
            return response
        except SQLAlchemyError as exc:  # the records cannot be read: say so, keep serving
            response.error = f"the records cannot be read: {error_line(exc)}"
            return response
        self.get_logger().info(f"{request.user or 'someone'} asked {request.question!r}: {answer.mode}, "
                               f"{len(answer.citations)} citation(s), {answer.latency_ms:.0f} ms")
        response.answer, response.citations, response.grounded = answer.answer, answer.citations, answer.grounded
        response.mode, response.latency_ms = answer.mode, answer.latency_ms
        return response

    def _streamer(self, stream_id: int):
        seq = 0

        def publish(text: str, last: bool = False) -> None:
            nonlocal seq
            self.stream_pub.publish(AssistantText(stream_id=stream_id, seq=seq, text=text, last=last))
            seq += 1
        return publish


def main(args: list[str] | None = None) -> None:
    runtime.run_node(AssistantNode, args)


if __name__ == "__main__":
    main()

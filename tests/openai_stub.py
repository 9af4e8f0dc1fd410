"""A local OpenAI-compatible HTTP server for the assistant's LLM tests: ``/v1/chat/completions`` answers
with the scripted completion (plain or streamed as server-sent events) and keeps every request it got.
It listens on 127.0.0.1 only."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietOnHangUp(ThreadingHTTPServer):
    """A client that gave up (the slow-endpoint test's 0.5 s timeout against a 2 s reply) leaves the reply
    nowhere to go: that is the test working, not a server error worth a traceback in the test log."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIStub:
    def __init__(self) -> None:
        self.reply = ""
        self.delay_s = 0.0
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                if body.get("stream"):
                    self._stream(body)
                else:
                    self._complete(body)

            def _complete(self, body: dict) -> None:
                payload = json.dumps({
                    "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": stub.reply}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = stub.reply.split(" ")
                for i, word in enumerate(words):
                    piece = word + (" " if i < len(words) - 1 else "")
                    chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                             "model": body.get("model"),
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                done = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                        "model": body.get("model"), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()

        self.server = _QuietOnHangUp(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

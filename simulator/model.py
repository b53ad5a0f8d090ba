"""A stand-in language model for the rollback demo: an OpenAI-compatible chat endpoint on loopback that can break.

It answers every `POST /v1/chat/completions` with one polite "continue" reply in the JSON shape the LLM brain
reads (brains/llm.py), until `broken` is set: from then on it answers 503, as a provider in an outage does.
The tests' scriptable fake (tests/fake_openai.py) does far more; this one ships with the simulator so that
`make demo` needs nothing from tests/.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = {"reply": "Yes, we do that. Is there anything else?", "action": "continue", "department": None,
         "confidence": 0.9}


class StandInModel:
    """`with StandInModel() as model:` serves on 127.0.0.1 until the block ends; `model.broken = True` breaks it."""

    def __init__(self):
        self.broken = False
        self.answered = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="stand-in-model", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> StandInModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(model: StandInModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/chat/completions":
                return self._answer(404, {"error": {"message": "not found"}})
            if model.broken:
                return self._answer(503, {"error": {"message": "the model is down (rollback demo)"}})
            model.answered += 1
            return self._answer(200, _completion(json.dumps(REPLY)))

        def _answer(self, status: int, body: dict) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            """Quiet: the demo prints its own story."""

    return Handler


def _completion(content: str) -> dict:
    return {"id": "chatcmpl-demo", "object": "chat.completion", "created": 0, "model": "demo",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

"""A local stand-in for an OpenAI-compatible chat-completions server (an outside
service we cannot run here): answers POST /v1/chat/completions with what the test
sets, and records the requests it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class StandInChatCompletions:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.content = "{}"
        self.url = ""

    def answer(self, content: str | dict[str, Any], status: int = 200) -> None:
        self.content = content if isinstance(content, str) else json.dumps(content)
        self.status = status


@contextmanager
def standin_llm() -> Iterator[StandInChatCompletions]:
    state = StandInChatCompletions()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            state.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("authorization")}
            )
            out = json.dumps(
                {
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": state.content}}
                    ]
                }
            ).encode()
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def llm_standin() -> Iterator[StandInChatCompletions]:
    """The stand-in chat-completions server, started for one test."""
    with standin_llm() as s:
        yield s

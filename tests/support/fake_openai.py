"""A fault-injecting OpenAI-compatible server on loopback, for tests.

    with FakeOpenAI() as fake:
        fake.fail("500", times=2)         # the next 2 requests answer 500
        backend = OpenAIBackend(fake.base_url, "m")

Faults (each consumed by one request, in order): "500", "503", "429" (with Retry-After: 0),
"400" (an OpenAI error body), "timeout" (sleeps `slow_seconds` before answering),
"truncated" (half a JSON body), "garbage" (not JSON), "drop" (closes the socket without a
response). `reject_n = True` makes it answer 400 to any `n > 1`, like servers without `n`.
Replies are deterministic: choice i of a request says "The answer is {i}." and counts its
tokens as words. Every request body is kept in `requests`. `port` binds a given port (a
server stopped and started again on its port is one that went down and came back).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, slow_seconds: float = 3.0, port: int = 0) -> None:
        self.faults: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.reject_n = False
        self.slow_seconds = slow_seconds
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._send(
                    200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fault = fake.faults.popleft() if fake.faults else None
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault == "timeout":
                    time.sleep(fake.slow_seconds)
                if fault in ("500", "503"):
                    return self._send(int(fault), {"error": {"message": "upstream exploded"}})
                if fault == "429":
                    return self._send(
                        429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
                    )
                if fault == "400":
                    return self._send(400, {"error": {"message": "bad temperature, friend"}})
                if fault == "truncated":
                    return self._raw(200, b'{"choices": [{"text": "The ans')
                if fault == "garbage":
                    return self._raw(200, b"<html>proxy error</html>")
                n = int(body.get("n") or 1)
                if n > 1 and fake.reject_n:
                    return self._send(400, {"error": {"message": "n > 1 is not supported"}})
                self._send(200, fake.reply(self.path, body, n))

            def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                self._raw(status, json.dumps(data).encode(), headers)

            def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that time out on purpose close their end: nothing to report

        self._server = Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail(self, fault: str, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    @staticmethod
    def reply(path: str, body: dict[str, Any], n: int) -> dict[str, Any]:
        texts = [f"The answer is {i}." for i in range(n)]
        chat = path.endswith("/chat/completions")
        choices = []
        for i, text in enumerate(texts):
            words = text.split(" ")
            tokens = [w if k == 0 else " " + w for k, w in enumerate(words)]
            if chat:
                choice: dict[str, Any] = {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                }
                if body.get("logprobs"):
                    choice["logprobs"] = {
                        "content": [
                            {
                                "token": t,
                                "logprob": -0.5,
                                "top_logprobs": [{"token": t, "logprob": -0.5}],
                            }
                            for t in tokens
                        ]
                    }
            else:
                choice = {"index": i, "text": text}
                if body.get("logprobs"):
                    choice["logprobs"] = {
                        "tokens": tokens,
                        "token_logprobs": [-0.5] * len(tokens),
                        "top_logprobs": [{t: -0.5} for t in tokens],
                        "text_offset": [0] * len(tokens),
                    }
            choice["finish_reason"] = "stop"
            choices.append(choice)
        return {
            "id": "fake",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", "fake-model"),
            "choices": choices,
            "usage": {
                "prompt_tokens": 7,
                "completion_tokens": 4 * n,
                "total_tokens": 7 + 4 * n,
            },
        }

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

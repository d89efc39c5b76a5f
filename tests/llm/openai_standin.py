"""A stand-in for an OpenAI-compatible model server (vLLM, TGI, llama.cpp: none can run here): a small real HTTP
server speaking the OpenAI streaming protocol (SSE), for the openai backend's tests and the server tests that
need a slow or endless model."""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = ["お問い合わせ", "ありがとう", "ございます。", "送料は", "550円です。"]


class OpenAIStandIn:
    """Behaviour is chosen by the model name in the request body: "error" (HTTP 500), "empty" (no text),
    "endless" (2,000 pieces, 5 ms apart), "forever" (a piece every 0.1 s until the client goes away), "slow"
    (1 s before the reply), anything else: REPLY."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.sent_chunks = 0
        self.disconnected = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                behaviour = body["model"]
                if behaviour == "error":
                    payload = b'{"error": {"message": "model crashed"}}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                chat = self.path.endswith("/chat/completions")
                pieces = {"empty": [], "endless": ["送料は"] * 2000}.get(behaviour, REPLY)
                if behaviour == "forever":
                    pieces = itertools.repeat("送料は")
                try:
                    if behaviour == "slow":
                        time.sleep(1.0)
                    for piece in pieces:
                        choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                        self.wfile.write(f"data: {json.dumps({'choices': [choice]}, ensure_ascii=False)}\n\n".encode())
                        self.wfile.flush()
                        server.sent_chunks += 1
                        if behaviour in ("endless", "forever"):
                            time.sleep(0.005 if behaviour == "endless" else 0.1)
                    self.wfile.write(b": keep-alive comment\n\ndata: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnected.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

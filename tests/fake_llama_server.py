"""A fake llama_cpp.server for the `local start` tests: it lists the config's model aliases on
GET /v1/models like the real one, then does on POST /v1/chat/completions what --on-completion
says, to reproduce the ways a real server fails after it has listed its models:

  segv      kill itself with SIGSEGV (what llama.cpp built for another CPU did: a GPF)
  exit-139  os._exit(139), as a shell wrapper reports that crash
  http-500  answer 500 with a JSON error, and stay alive
  html-200  answer an HTML page with status 200, and stay alive
  drop      close the connection without an answer, and stay alive
  drop-once drop the first completion's connection, then answer like `ok`
  hang      never answer (the connection stays open), and stay alive
  ok        answer a well-formed one-token chat completion

It is run exactly like the real server: `python fake_llama_server.py ... --config_file PATH`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("segv", "exit-139", "http-500", "html-200", "drop", "drop-once", "hang", "ok")


def log(line: str) -> None:
    print(f"fake_llama_server: {line}", flush=True)


def make_handler(aliases: list[str], mode: str) -> type[BaseHTTPRequestHandler]:
    completions = {"count": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            log(format % args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self._send(404, b'{"detail": "Not Found"}', "application/json")
                return
            data = [{"id": alias, "object": "model", "owned_by": "me"} for alias in aliases]
            self._send(
                200, json.dumps({"object": "list", "data": data}).encode(), "application/json"
            )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            completions["count"] += 1
            log(f"completion {completions['count']} for {request.get('model')!r}, mode {mode}")
            if mode in ("segv", "exit-139"):
                log("ggml_backend_amx_mul_mat: general protection fault in ldtilecfg (fake)")
            if mode == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)  # SIG_DFL, set in main: the process dies
                threading.Event().wait()  # delivery is asynchronous: answer nothing meanwhile
            if mode == "exit-139":
                os._exit(139)
            if mode == "http-500":
                body = b'{"error": {"message": "fake internal error", "code": 500}}'
                self._send(500, body, "application/json")
                return
            if mode == "html-200":
                self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
                return
            if mode == "hang":
                threading.Event().wait()
            if mode == "drop" or (mode == "drop-once" and completions["count"] == 1):
                self.close_connection = True
                return
            answer = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": request.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "OK"},
                        "finish_reason": "length",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
            self._send(200, json.dumps(answer).encode(), "application/json")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--on-completion", choices=MODES, required=True)
    parser.add_argument("--config_file", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)  # only the main thread may set handlers
    with open(args.config_file) as handle:
        config = json.load(handle)
    aliases = [model["model_alias"] for model in config["models"]]
    server = ThreadingHTTPServer(
        (config["host"], config["port"]), make_handler(aliases, args.on_completion)
    )
    log(f"listening on {config['host']}:{config['port']} with {', '.join(aliases)}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()

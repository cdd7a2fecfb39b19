"""A LiteLLM callback that writes down what LiteLLM's accounting sees, for the gateway tests.

Every success and failure event LiteLLM dispatches to callbacks in the proxy process (the
events its spend tracking and budget checks are fed from) becomes one JSON line in the file
named by ``CASCADE_TEST_SPEND_LOG``: the model, the cost LiteLLM computed, the call type and
the request's last message (events arrive after their responses, so a test tells its own
requests' events from a previous test's late ones by it). A double-counted cascade would
show up here as more than one event per request.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

_lock = threading.Lock()


def _write(kind: str, kwargs: dict[str, Any]) -> None:
    path = os.environ.get("CASCADE_TEST_SPEND_LOG")
    if not path:
        return
    payload = kwargs.get("standard_logging_object") or {}
    line = {
        "event": kind,
        "model": kwargs.get("model"),
        "response_cost": payload.get("response_cost", kwargs.get("response_cost")),
        "call_type": kwargs.get("call_type"),
        "stream": bool(kwargs.get("stream")),
        "prompt": _last_message(kwargs.get("messages")),
    }
    with _lock, open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def _last_message(messages: Any) -> str | None:
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content"))
    return None


class SpendRecorder(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        _write("success", kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        _write("failure", kwargs)


recorder = SpendRecorder()

"""LiteLLM Proxy's own spend tracking, run without a database, with a SPY on what it charges.

With a database, the proxy registers its cost tracker ``ProxyDBLogger`` as a success
callback (``proxy_server.cost_tracking``); the tracker takes the request's cost from the
standard logging payload and charges it to the key, team, user and end user in
``DBSpendUpdateWriter.update_database`` and in the cached key/team objects
(``proxy_server.update_cache``). Without a database the proxy skips that registration, so
this module's callback entry (``gateway_charge_spy.tracker``) is that same tracker, and
importing the module wraps LiteLLM's two charging functions: each call is written as one JSON
line to the file named by ``CASCADE_TEST_CHARGE_LOG`` (who is charged, how much), then
LiteLLM's function runs unchanged (its database writes find no database and are skipped by
LiteLLM itself).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from typing import Any

from litellm.proxy import proxy_server
from litellm.proxy.db.db_spend_update_writer import DBSpendUpdateWriter
from litellm.proxy.hooks.proxy_track_cost_callback import ProxyDBLogger

_lock = threading.Lock()


def _write(kind: str, **fields: Any) -> None:
    path = os.environ.get("CASCADE_TEST_CHARGE_LOG")
    if not path:
        return
    with _lock, open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"charge": kind, **fields}, default=str) + "\n")


def _model(kwargs: dict[str, Any] | None) -> Any:
    payload = (kwargs or {}).get("standard_logging_object") or {}
    return payload.get("model_group") or (kwargs or {}).get("model")


_original_update_database = DBSpendUpdateWriter.update_database
_original_update_cache = proxy_server.update_cache


@functools.wraps(_original_update_database)
async def _spied_update_database(self, *args: Any, **kwargs: Any) -> bool:
    _write(
        "update_database",
        token=kwargs.get("token"),
        team_id=kwargs.get("team_id"),
        user_id=kwargs.get("user_id"),
        response_cost=kwargs.get("response_cost"),
        model=_model(kwargs.get("kwargs")),
    )
    return await _original_update_database(self, *args, **kwargs)


@functools.wraps(_original_update_cache)
async def _spied_update_cache(*args: Any, **kwargs: Any) -> Any:
    _write(
        "update_cache",
        token=kwargs.get("token"),
        team_id=kwargs.get("team_id"),
        response_cost=kwargs.get("response_cost"),
    )
    return await _original_update_cache(*args, **kwargs)


DBSpendUpdateWriter.update_database = _spied_update_database  # type: ignore[method-assign]
proxy_server.update_cache = _spied_update_cache


# LiteLLM's tracker as ``cost_tracking`` builds it without a spend-event collector: it
# charges in-process, on the success event of every request.
tracker = ProxyDBLogger()

"""`cascade-router batch --ray`: the same job on Ray Data, for scale-out beyond one machine.

Only the model calls move to Ray: pending rows become a Ray dataset, ``map_batches`` runs
them on a pool of actors (each builds one `CascadeEngine` and runs its batch with bounded
concurrency), and the driver streams the results back and journals them exactly as the
local runner does. Resume and exactly-once therefore work the same way: one writer, one
output file (locked by the driver for the whole run), rows keyed by id.

Rows travel as JSON strings: nested, ragged messages would otherwise be forced into Arrow
columns of one type.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from cascade_core.engine.config import RouterConfig
from cascade_core.jobs.journal import Journal
from cascade_core.jobs.runner import (
    BatchSummary,
    InputRow,
    make_engine,
    pending_rows,
    record_progress,
    run_row,
)
from cascade_core.progress import CostProgress


class _EngineWorker:
    """A Ray Data actor: one engine, reused for every batch it receives."""

    def __init__(self, config: dict[str, Any], concurrency: int, with_trace: bool) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        self.engine = make_engine(RouterConfig.from_dict(config, source="ray job config"))
        self.concurrency = concurrency
        self.with_trace = with_trace

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [_decode(text) for text in batch["row"]]
        records = asyncio.run(self._run(rows))
        return {"result": [json.dumps(r, default=str) for r in records]}

    async def _run(self, rows: list[InputRow]) -> list[dict[str, Any]]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(row: InputRow) -> dict[str, Any]:
            async with limit:
                return await run_row(self.engine, row, self.with_trace)

        return await asyncio.gather(*(one(row) for row in rows))


def _encode(row: InputRow) -> str:
    return json.dumps({"id": row.id, "record": row.record, "problem": row.problem})


def _decode(text: str) -> InputRow:
    data = json.loads(text)
    return InputRow(data["id"], data["record"], data["problem"])


def run_batch_job_ray(
    config: RouterConfig,
    input_path: Path,
    output_path: Path,
    *,
    concurrency: int = 8,
    actors: int | None = None,
    batch_size: int = 16,
    address: str | None = None,
    num_cpus: int | None = None,
    with_trace: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Run the pending rows on Ray (``address``: a cluster, default a local Ray).

    The output's lock is taken before Ray starts, so a second job on the same file is
    refused at once rather than after a Ray start-up.
    """
    import ray

    with Journal(output_path) as journal:
        pending, total = pending_rows(input_path, journal.done)
        if not ray.is_initialized():
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}},
            )
        pool = actors or max(1, int(ray.available_resources().get("CPU", 1)))
        skipped = total - len(pending)
        bar = CostProgress(total, "batch[ray]", enabled=progress, done=skipped)
        try:
            if pending:
                dataset = ray.data.from_items([{"row": _encode(row)} for row in pending])
                results = dataset.map_batches(
                    _EngineWorker,
                    fn_constructor_kwargs={
                        "config": config.model_dump(mode="json", by_alias=True),
                        "concurrency": concurrency,
                        "with_trace": with_trace,
                    },
                    batch_size=batch_size,
                    concurrency=pool,
                    num_cpus=1,
                )
                for item in results.iter_rows():  # streamed as batches finish
                    record = json.loads(item["result"])
                    if journal.append(record):
                        record_progress(bar, record)
        finally:
            bar.close()
        return BatchSummary.of(bar, journal, total=total, skipped=skipped)

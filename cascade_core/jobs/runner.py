"""`cascade-router batch`: route every row of a JSONL file through the live engine.

Input rows: ``{"id": ..., "messages": [...] | "prompt": "...", "params": {...}}``; ids are
unique by construction (`cascade_core.jsonl`: default ``line-N``, a repeated id is refused
naming both lines). Output rows, one per input row, in completion order::

    {"id": "r1", "ok": true, "content": "...", "model": "small", "cost_usd": 1.2e-06,
     "models_run": ["small"], "escalated": false}
    {"id": "r2", "ok": false, "error": "AllModelsFailedError: ...", "cost_usd": 0.0}

A row that fails (a line that is not UTF-8 or not a JSON object, bad input, every model
failed) is recorded, never fatal, so a large job finishes; filter on ``ok`` and rerun those
rows as a new job if wanted. Only a problem with the ids themselves stops the job, before
anything runs: they are the key that makes a rerun skip what is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_core.engine.config import RouterConfig
from cascade_core.jobs.journal import Journal
from cascade_core.jsonl import RowIds, read_json_lines, row_request
from cascade_core.progress import CostProgress


@dataclass(frozen=True)
class InputRow:
    """One input line; ``problem`` holds why it cannot be run (recorded as its result)."""

    id: str
    record: dict[str, Any] | None
    problem: str | None = None


def read_rows(path: str | Path) -> Iterator[InputRow]:
    """Stream the input; a line that is not a JSON object becomes a row with its problem."""
    ids = RowIds(path)
    for line in read_json_lines(path, "batch input"):
        yield InputRow(ids.claim(line), line.record, line.problem)


def pending_rows(path: str | Path, done: set[str]) -> tuple[list[InputRow], int]:
    """Rows not yet in the output, and the number of input rows in total (the whole input
    is read first, so an id problem anywhere refuses the job before any call)."""
    rows = list(read_rows(path))
    return [row for row in rows if row.id not in done], len(rows)


def result_record(row: InputRow, result: Any, with_trace: bool) -> dict[str, Any]:
    trace = result.trace
    record: dict[str, Any] = {
        "id": row.id,
        "ok": True,
        "content": result.content,
        "model": result.model,
        "cost_usd": result.cost_usd,
        "models_run": trace.models_run,
        "escalated": len(trace.models_run) > 1,
    }
    if result.answer.tool_calls:
        record["tool_calls"] = result.answer.tool_calls
    if with_trace:
        record["trace"] = trace.as_dict()
    return record


def error_record(row: InputRow, error: BaseException | str) -> dict[str, Any]:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {"id": row.id, "ok": False, "error": str(text)[:2000], "cost_usd": 0.0}


async def run_row(engine: Any, row: InputRow, with_trace: bool) -> dict[str, Any]:
    """The output record of one row; any failure becomes an error record."""
    if row.problem is not None:
        return error_record(row, row.problem)
    try:
        assert row.record is not None  # a row without a record has its problem
        messages, params = row_request(row.record, f"row {row.id}")
        result = await engine.arun(messages, **params)
    except Exception as error:
        return error_record(row, error)
    return result_record(row, result, with_trace)


def make_engine(config: RouterConfig) -> Any:
    """The engine for a job. Building it resolves the ladder, which also turns LiteLLM's
    stdout banners off (they would corrupt the summary line)."""
    from cascade_core.engine import CascadeEngine

    return CascadeEngine(config)


def record_progress(bar: CostProgress, record: dict[str, Any]) -> None:
    bar.update(
        float(record.get("cost_usd") or 0.0),
        escalated=bool(record.get("escalated")),
        error=not record.get("ok"),
    )


@dataclass
class BatchSummary:
    total: int
    skipped: int
    written: int
    errors: int
    cost_usd: float
    escalation_rate: float
    truncated_bytes: int

    @classmethod
    def of(cls, bar: CostProgress, journal: Journal, total: int, skipped: int) -> BatchSummary:
        """The summary of a finished (or interrupted) run, from its progress and journal."""
        return cls(
            total=total,
            skipped=skipped,
            written=bar.items,
            errors=bar.errors,
            cost_usd=bar.cost_usd,
            escalation_rate=bar.escalation_rate,
            truncated_bytes=journal.truncated_bytes,
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def run_batch_job(
    config: RouterConfig,
    input_path: Path,
    output_path: Path,
    *,
    concurrency: int = 8,
    with_trace: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Run the rows not yet in ``output_path`` with at most ``concurrency`` in flight."""
    with Journal(output_path) as journal:
        pending, total = pending_rows(input_path, journal.done)
        engine = make_engine(config)
        skipped = total - len(pending)
        bar = CostProgress(total, "batch", enabled=progress, done=skipped)
        try:
            asyncio.run(_run_local(engine, pending, journal, bar, concurrency, with_trace))
        finally:
            bar.close()
        return BatchSummary.of(bar, journal, total=total, skipped=skipped)


async def _run_local(
    engine: Any,
    rows: list[InputRow],
    journal: Journal,
    bar: CostProgress,
    concurrency: int,
    with_trace: bool,
) -> None:
    """N workers pull rows; each result is journalled as soon as it is known."""
    queue = iter(rows)

    async def worker() -> None:
        for row in queue:  # a shared iterator: each row goes to exactly one worker
            record = await run_row(engine, row, with_trace)
            if journal.append(record):
                record_progress(bar, record)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))

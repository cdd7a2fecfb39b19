"""A progress bar with live cost, shared by `calibrate` and `batch`.

Why tqdm: it degrades to plain periodic lines when stderr is not a terminal (CI, nohup), and
it never touches stdout, which may be piped. ``--no-progress`` disables it.
"""

from __future__ import annotations

import sys
from typing import Any


class CostProgress:
    """Counts items and spend; shows the cost, and the escalation rate when given."""

    def __init__(self, total: int, description: str, enabled: bool = True, done: int = 0) -> None:
        self.cost_usd = 0.0
        self.items = 0
        self.escalated = 0
        self.errors = 0
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                desc=description,
                unit="row",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
            )

    def update(
        self, cost_usd: float = 0.0, *, escalated: bool | None = None, error: bool = False
    ) -> None:
        self.cost_usd += cost_usd
        self.items += 1
        self.errors += int(error)
        if escalated is not None:
            self.escalated += int(escalated)
        if self._bar is not None:
            fields = [f"cost=${self.cost_usd:.6g}"]
            if escalated is not None:
                fields.append(f"escalated={self.escalation_rate:.0%}")
            if self.errors:
                fields.append(f"errors={self.errors}")
            self._bar.set_postfix_str(" ".join(fields), refresh=False)
            self._bar.update(1)

    def spend(self, cost_usd: float) -> None:
        """Cost of a call that is not an item of its own (a verification of an answer)."""
        self.cost_usd += cost_usd
        if self._bar is not None:
            self._bar.set_postfix_str(f"cost=${self.cost_usd:.6g}", refresh=False)

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.items if self.items else 0.0

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

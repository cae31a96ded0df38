"""The progress bar of a run: cases done, errors, cache hits and running cost (tqdm)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["Progress"]


class Progress:
    """Counts what the run handed over; draws a tqdm bar when ``enabled``."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str) -> None:
        self.errors = 0
        self.cost = 0.0
        self.cached = 0
        self._bar: Any = None
        self._last = 0.0
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="case", dynamic_ncols=True,
                             mininterval=0.2)

    def update(self, res: Mapping[str, Any], n: int = 1) -> None:
        if res.get("status") != "ok":
            self.errors += 1
        cost = res.get("cost_usd")
        if res.get("from_cache"):
            self.cached += 1
        elif isinstance(cost, (int, float)) and not isinstance(cost, bool) and math.isfinite(cost):
            self.cost += float(cost)
        if self._bar is not None:
            self._bar.update(n)
            now = time.monotonic()
            if now - self._last > 0.25:
                self._last = now
                self._postfix()

    def _postfix(self) -> None:
        post = {"errors": self.errors, "cost": f"${self.cost:.4f}"}
        if self.cached:
            post["cached"] = self.cached
        self._bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._postfix()
            self._bar.refresh()
            self._bar.close()

"""Progress of a lifecycle verb: each step shown as it runs, and recorded with its duration for --json."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from ..ui import UI


class Timer:
    """ui.step that also records each step's duration, and when it began (seconds since the verb began: steps
    run side by side), for the verb's JSON result."""

    def __init__(self, ui: UI):
        self.ui = ui
        self.steps: list[dict] = []
        self._t0 = time.monotonic()

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[dict[str, Any]]:
        began = round(time.monotonic() - self._t0, 1)
        with self.ui.step(text) as info:
            yield info
        self.steps.append({"step": text, "began": began, "seconds": info["seconds"],
                           **({"note": info["note"]} if info.get("note") else {})})

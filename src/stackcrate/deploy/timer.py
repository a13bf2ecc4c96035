"""Progress of a lifecycle verb: each step shown as it runs, and recorded with its duration for --json."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..ui import UI


class Timer:
    """ui.step that also records each step's duration for the verb's JSON result."""

    def __init__(self, ui: UI):
        self.ui = ui
        self.steps: list[dict] = []

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[dict[str, Any]]:
        with self.ui.step(text) as info:
            yield info
        self.steps.append({"step": text, "seconds": info["seconds"], **({"note": info["note"]} if
                                                                          info.get("note") else {})})

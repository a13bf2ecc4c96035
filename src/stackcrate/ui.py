"""Console output: progress on stderr (rich), results on stdout, JSON for scripts."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


class UI:
    def __init__(self, verbose: int = 0, as_json: bool = False, quiet: bool = False):
        self.verbose = verbose
        self.as_json = as_json
        self.quiet = quiet
        self.steps: list[dict[str, Any]] = []   # every finished step with its seconds (for --json and benches)
        self._spinner = threading.Lock()         # one spinner at a time: steps may run in several threads
        level = logging.DEBUG if verbose >= 1 else logging.WARNING
        logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                            handlers=[RichHandler(console=err, show_path=False, show_time=verbose >= 2)],
                            force=True)

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[dict[str, Any]]:
        """A long step: a spinner while it runs, then a line with its duration. Yields a dict for a note.
        Steps may run in several threads at once: the first one shows the spinner, the others only their line."""
        info: dict[str, Any] = {}
        start = time.monotonic()
        if self.quiet or self.as_json or not err.is_terminal or not self._spinner.acquire(blocking=False):
            yield info
        else:
            try:
                with err.status(text):
                    yield info
            finally:
                self._spinner.release()
        took = time.monotonic() - start
        info["seconds"] = round(took, 2)
        self.steps.append({"step": text, "seconds": info["seconds"]})
        if not self.quiet and not self.as_json:
            note = f" ({info['note']})" if info.get("note") else ""
            err.print(f"[green]✓[/] {text}{note} [dim]{took:.1f}s[/]")

    def info(self, text: str) -> None:
        if not self.quiet and not self.as_json:
            err.print(text)

    def warn(self, text: str) -> None:
        # text is never markup: a config section ("[DEFAULT]") or a tool's output would be taken for a style tag
        err.print(f"[yellow]warning:[/] {escape(text)}")

    def result(self, data: Any, text: str | None = None) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        elif text is not None:
            out.print(text)

"""Console output: progress on stderr (rich), results on stdout, JSON for scripts."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


class UI:
    def __init__(self, verbose: int = 0, as_json: bool = False, quiet: bool = False):
        self.verbose = verbose
        self.as_json = as_json
        self.quiet = quiet
        level = logging.DEBUG if verbose >= 1 else logging.WARNING
        logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                            handlers=[RichHandler(console=err, show_path=False, show_time=verbose >= 2)],
                            force=True)

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[dict[str, Any]]:
        """A long step: a spinner while it runs, then a line with its duration. Yields a dict for a note."""
        info: dict[str, Any] = {}
        start = time.monotonic()
        if self.quiet or self.as_json or not err.is_terminal:
            yield info
        else:
            with err.status(text):
                yield info
        took = time.monotonic() - start
        info["seconds"] = round(took, 2)
        if not self.quiet and not self.as_json:
            note = f" ({info['note']})" if info.get("note") else ""
            err.print(f"[green]✓[/] {text}{note} [dim]{took:.1f}s[/]")

    def info(self, text: str) -> None:
        if not self.quiet and not self.as_json:
            err.print(text)

    def warn(self, text: str) -> None:
        err.print(f"[yellow]warning:[/] {text}")

    def result(self, data: Any, text: str | None = None) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        elif text is not None:
            out.print(text)

"""pipeline._side_by_side: a build's artifacts are made one per core, their results in the calls' order."""

from __future__ import annotations

import threading
import time

import pytest

from stackcrate import pipeline
from stackcrate.errors import StackcrateError


@pytest.mark.timeout(10)
def test_results_come_in_the_calls_order_and_the_calls_overlap(monkeypatch):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    both = threading.Barrier(2, timeout=5)  # each of the first two waits for the other: they run at once

    def slow():
        both.wait()
        time.sleep(0.2)
        return "slow"

    def quick():
        both.wait()
        return "quick"

    assert pipeline._side_by_side([slow, quick, lambda: "third"]) == ["slow", "quick", "third"]


@pytest.mark.timeout(10)
def test_the_first_failure_is_raised_once_the_calls_running_beside_it_end(monkeypatch):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    running = threading.Event()
    ended = []

    def fails():
        running.wait(5)
        raise StackcrateError("dpkg-deb could not build x.deb")

    def runs_on():
        running.set()
        time.sleep(0.3)
        ended.append("runs_on")

    with pytest.raises(StackcrateError, match="dpkg-deb could not build"):
        pipeline._side_by_side([fails, runs_on])
    assert ended == ["runs_on"]  # not left running (half-written) behind the error

"""Processes start each as soon as those it needs serve (startstop._each_when_ready), not a wave at a time."""

from __future__ import annotations

import threading
import time

import pytest

from stackcrate.deploy.processes import ProcessDef
from stackcrate.deploy.startstop import _each_when_ready, needs
from stackcrate.errors import StackcrateError


def proc(name: str, after: tuple[str, ...]) -> ProcessDef:
    return ProcessDef(name, "service", f"/bin/{name}", (), after=after)


# keystone first; conductor and a slow API after it; compute after keystone and the conductor only
PLIST = [proc("keystone", ()), proc("conductor", ("keystone",)), proc("slow-api", ("keystone",)),
         proc("compute", ("keystone", "conductor"))]
TAKES = {"keystone": 0.05, "conductor": 0.05, "slow-api": 0.6, "compute": 0.05}


def run(launched: dict[str, float], ready: dict[str, float], fail: str | None = None,
        fail_once_launched: str | None = None) -> list:
    """fail: the process whose health check fails, once fail_once_launched was launched (without that order, a
    thread starved on a loaded machine could come to its launch after the failure, and rightly not launch)."""
    lock = threading.Lock()
    t0 = time.monotonic()
    other_launched = threading.Event()

    def launch(p: ProcessDef) -> None:
        with lock:
            launched[p.name] = time.monotonic() - t0
        if p.name == fail_once_launched:
            other_launched.set()

    def healthy(p: ProcessDef) -> tuple[str, float]:
        time.sleep(TAKES[p.name])
        if p.name == fail:
            if fail_once_launched:
                assert other_launched.wait(5), f"{fail_once_launched} was not launched"
            raise StackcrateError(f"{p.name} did not become healthy")
        with lock:
            ready[p.name] = time.monotonic() - t0
        return "ok", TAKES[p.name]

    return _each_when_ready(PLIST, needs(PLIST), launch, healthy)


@pytest.mark.timeout(10)
def test_a_process_starts_once_its_needs_serve_without_waiting_for_a_slow_neighbour():
    launched: dict[str, float] = {}
    ready: dict[str, float] = {}
    answers = run(launched, ready)
    assert [a[0] for a in answers] == ["ok"] * 4
    # compute waits for the conductor (and keystone) to serve...
    assert launched["compute"] >= ready["conductor"] >= launched["conductor"] >= ready["keystone"]
    # ...but not for the slow API beside the conductor, as a wave would have made it
    assert launched["compute"] < ready["slow-api"] - 0.3


@pytest.mark.timeout(10)
def test_what_needs_a_process_that_failed_is_not_started_and_the_failure_is_raised():
    launched: dict[str, float] = {}
    with pytest.raises(StackcrateError, match="conductor did not become healthy"):
        run(launched, {}, fail="conductor", fail_once_launched="slow-api")
    assert "slow-api" in launched and "compute" not in launched


def test_a_written_folder_another_process_made_meanwhile_is_no_error(tmp_path, monkeypatch):
    """ovn-northd and ovn-controller write the same run folder and start side by side: the one that looks second
    may find it missing and then made by the other before its own mkdir (CI saw FileExistsError)."""
    from pathlib import Path

    from stackcrate.deploy.processes import make_written_folders

    shared = tmp_path / "run" / "ovn"
    shared.mkdir(parents=True)
    monkeypatch.setattr(Path, "exists", lambda self: False)  # it looked before the other one made it
    make_written_folders(ProcessDef("ovn-controller", "backing", "/bin/true", (), writes=(str(shared),)))
    assert shared.is_dir()

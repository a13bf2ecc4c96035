"""A console script kept loaded, each call a child forked from it (deploy/warm_program.py), run for real on the
tool venv of conftest.py (its bin/python is this interpreter; its module prints "imported" when imported)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stackcrate.deploy.warm_program import WarmProgram
from stackcrate.errors import StackcrateError
from stackcrate.tools import ToolFailed


def env(tool_venv: Path, password: str = "s3cret") -> dict[str, str]:
    # PYTHONUNBUFFERED empty: the interpreter's stdout buffered, as it is where nothing sets it
    return {"PYTHONPATH": str(tool_venv / "site"), "TOOL_PASSWORD": password, "PYTHONUNBUFFERED": ""}


@pytest.fixture
def warm(tool_venv):
    program = WarmProgram(str(tool_venv / "bin" / "tool-manage"), env(tool_venv), preload=("tool.",))
    yield program
    program.close()


def test_calls_from_several_threads_run_side_by_side_each_in_a_fresh_child_of_one_import(warm, tool_venv):
    prog = warm.program
    calls = [[prog, "sleep", "1.5"], [prog, "sleep", "1.5"], [prog, "first"], [prog, "second"]]
    warm.run([prog, "loaded"], env(tool_venv))
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda argv: warm.run(argv, env(tool_venv)), calls))
    assert time.monotonic() - start < 2.9  # the two sleeps overlapped (one after the other: 3 s)
    runs = [p.stdout.split() for p in done]
    assert all(p.returncode == 0 and "imported" not in p.stdout for p in done)  # imported by the interpreter only
    assert [r[2:] for r in runs] == [["sleep", "['sleep']", "s3cret"]] * 2 + [["first", "['first']", "s3cret"],
                                                                              ["second", "['second']", "s3cret"]]
    assert len({r[1] for r in runs}) == 4  # four processes, none saw another's state


def test_the_modules_of_the_preloaded_groups_are_imported_by_the_interpreter_while_it_waits(warm, tool_venv):
    warm.run([warm.program, "sleep", "0.5"], env(tool_venv))  # the interpreter is idle meanwhile
    assert "plugin imported" not in warm.run([warm.program, "plugin"], env(tool_venv)).stdout
    cold = WarmProgram(warm.program, env(tool_venv))  # nothing preloaded: the call imports it
    try:
        assert "plugin imported" in cold.run([warm.program, "plugin"], env(tool_venv)).stdout
    finally:
        cold.close()


def test_each_call_has_its_own_environment_input_and_exit_status(warm, tool_venv):
    prog = warm.program
    assert warm.run([prog, "a"], env(tool_venv, "other")).stdout.split()[-1] == "other"
    assert "read some input" in warm.run([prog, "stdin"], env(tool_venv), input="some input").stdout
    assert warm.run([prog, "fails", "3"], env(tool_venv), check=False).returncode == 3
    with pytest.raises(ToolFailed) as failed:
        warm.run([prog, "raise"], env(tool_venv))
    assert failed.value.returncode == 1 and "RuntimeError: boom" in failed.value.stderr


def test_a_call_that_outlives_its_time_limit_is_killed_and_the_program_stays_usable(warm, tool_venv):
    start = time.monotonic()
    with pytest.raises(ToolFailed) as failed:
        warm.run([warm.program, "sleep", "30"], env(tool_venv), timeout=0.5)
    assert "did not finish within" in str(failed.value) and time.monotonic() - start < 10
    assert warm.run([warm.program, "after"], env(tool_venv)).returncode == 0


def test_close_ends_a_running_call_and_removes_the_files(tool_venv):
    warm = WarmProgram(str(tool_venv / "bin" / "tool-manage"), env(tool_venv))
    ended: list[BaseException] = []

    def long_call() -> None:
        try:
            warm.run([warm.program, "sleep", "30"], env(tool_venv), timeout=60)
        except (ToolFailed, StackcrateError) as exc:
            ended.append(exc)

    caller = threading.Thread(target=long_call)
    caller.start()
    deadline = time.monotonic() + 20
    while not warm._calls and time.monotonic() < deadline:  # the call is on its way (the import may be slow)
        time.sleep(0.05)
    start = time.monotonic()
    warm.close()
    caller.join(timeout=15)
    assert not caller.is_alive() and ended and time.monotonic() - start < 15
    assert warm._proc.poll() is not None and not warm._work.exists()
    with pytest.raises(StackcrateError, match="was closed"):
        warm.run([warm.program, "after"], env(tool_venv))


def test_a_program_changed_since_it_was_installed_runs_as_itself(tool_venv):
    (tool_venv / "bin" / "tool-manage").write_text("#!/bin/sh\necho planted \"$@\"\n")
    warm = WarmProgram(str(tool_venv / "bin" / "tool-manage"), env(tool_venv))
    try:
        assert warm.run([warm.program, "x"], env(tool_venv)).stdout == "planted x\n"
    finally:
        warm.close()


def test_a_program_that_cannot_be_loaded_fails_each_call_with_its_error(tool_venv):
    (tool_venv / "site" / "tool.py").write_text("raise ImportError('this tool is broken')\n")
    warm = WarmProgram(str(tool_venv / "bin" / "tool-manage"), env(tool_venv))
    try:
        with pytest.raises(StackcrateError, match="this tool is broken"):
            warm.run([warm.program, "x"], env(tool_venv))
    finally:
        warm.close()

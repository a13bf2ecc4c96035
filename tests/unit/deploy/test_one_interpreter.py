"""Several console scripts of one venv in one interpreter (deploy/one_interpreter.py), run for real: a venv-like
folder whose bin/python is this interpreter and whose programs are entry points of a small distribution."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stackcrate.deploy import one_interpreter
from stackcrate.deploy.one_interpreter import Step


def steps(tool_venv: Path, *commands: tuple[str, ...], ok: tuple[int, ...] = (0,)) -> list[Step]:
    env = (("PYTHONPATH", str(tool_venv / "site")), ("TOOL_PASSWORD", "s3cret"))
    return [Step((str(tool_venv / "bin" / c[0]), *c[1:]), env, ok) for c in commands]


def run(batch: list[Step]) -> subprocess.CompletedProcess:
    call = one_interpreter.call("tool", batch, reads=(), writes=())
    return subprocess.run(call.argv, env={**call.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_each_command_runs_in_order_in_a_fresh_child_of_one_import(tool_venv):
    batch = steps(tool_venv, ("tool-manage", "first"), ("tool-status", "second"), ("tool-manage", "third"))
    proc = run(batch)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len([x for x in lines if x.startswith("imported")]) == 1  # both programs: one module, imported once
    runs = [x.split(" ", 2) for x in lines if x.startswith("run")]
    assert [r[2] for r in runs] == ["first ['first'] s3cret", "second ['second'] s3cret", "third ['third'] s3cret"]
    assert len({r[1] for r in runs}) == 3 and lines[0].split()[1] not in {r[1] for r in runs}
    assert one_interpreter.argvs(one_interpreter.call("tool", batch, (), ())) == [s.argv for s in batch]


def test_an_exit_among_a_commands_ok_ones_goes_on_another_ends_the_batch_naming_it(tool_venv):
    ok = run(steps(tool_venv, ("tool-manage", "exists", "2"), ("tool-manage", "next"), ok=(0, 2)))
    assert ok.returncode == 0 and "run" in ok.stdout.splitlines()[-1]
    batch = steps(tool_venv, ("tool-manage", "first"), ("tool-status", "fails", "3"), ("tool-manage", "never"))
    proc = run(batch)
    assert proc.returncode == 3 and "never" not in proc.stdout
    assert one_interpreter.failed_step(proc.stderr, batch) == batch[1]


def test_a_command_that_raises_fails_with_its_traceback(tool_venv):
    batch = steps(tool_venv, ("tool-manage", "raise"), ("tool-manage", "never"))
    proc = run(batch)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr and "never" not in proc.stdout
    assert one_interpreter.failed_step(proc.stderr, batch) == batch[0]


def test_commands_of_two_venvs_or_with_one_variable_set_two_ways_do_not_share(tool_venv, tmp_path):
    a, b = steps(tool_venv, ("tool-manage", "a"), ("tool-manage", "b"))
    assert one_interpreter.can_share([a, b])
    assert not one_interpreter.can_share([a, Step(b.argv, (("PYTHONPATH", "/elsewhere"),))])
    assert not one_interpreter.can_share([a, Step(("/opt/openstack/other-1/bin/tool-manage", "b"))])


def test_a_program_changed_since_it_was_installed_runs_as_itself(tool_venv):
    """A script in bin/ that is not the one the installer wrote (a wrapper, a hotfix, a planted failure) is
    executed, not bypassed through its entry point; the others still share the interpreter's import."""
    (tool_venv / "bin" / "tool-status").write_text("#!/bin/sh\necho planted: this one fails >&2\nexit 3\n")
    batch = steps(tool_venv, ("tool-manage", "first"), ("tool-status", "anything"), ("tool-manage", "never"))
    proc = run(batch)
    assert proc.returncode == 3 and "planted: this one fails" in proc.stderr, proc.stderr
    assert "run" in proc.stdout and "first" in proc.stdout and "never" not in proc.stdout
    assert one_interpreter.failed_step(proc.stderr, batch) == batch[1]

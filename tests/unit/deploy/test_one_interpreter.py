"""Several console scripts of one venv in one interpreter (deploy/one_interpreter.py), run for real: a venv-like
folder whose bin/python is this interpreter and whose programs are entry points of a small distribution."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from stackcrate.deploy import one_interpreter
from stackcrate.deploy.one_interpreter import Step

TOOL = '''
import os, sys
print("imported", os.getpid(), flush=True)
SEEN = []  # global state, as oslo.config's CONF: a command must not find what an earlier one left


def main():
    SEEN.append(sys.argv[1])
    print("run", os.getpid(), sys.argv[1], SEEN, os.environ.get("TOOL_PASSWORD"), flush=True)
    if sys.argv[1] == "raise":
        raise RuntimeError("boom")
    return int(sys.argv[2]) if len(sys.argv) > 2 else 0
'''


WRAPPER = """#!{python}
import sys
from tool import main
if __name__ == "__main__":
    sys.exit(main())
"""


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """bin/python (this interpreter), site/ with a distribution offering two console scripts, and those scripts
    in bin/ as an installer writes them, listed in the distribution's RECORD with their sha256."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    site = tmp_path / "site"
    info = site / "tool-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tool\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[console_scripts]\ntool-manage = tool:main\ntool-status = tool:main\n")
    (site / "tool.py").write_text(TOOL)
    record = []
    for name in ("tool-manage", "tool-status"):
        script = tmp_path / "bin" / name
        script.write_text(WRAPPER.format(python=tmp_path / "bin" / "python"))
        script.chmod(0o755)
        digest = base64.urlsafe_b64encode(hashlib.sha256(script.read_bytes()).digest()).rstrip(b"=").decode()
        record.append(f"../bin/{name},sha256={digest},{script.stat().st_size}")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return tmp_path


def steps(venv: Path, *commands: tuple[str, ...], ok: tuple[int, ...] = (0,)) -> list[Step]:
    env = (("PYTHONPATH", str(venv / "site")), ("TOOL_PASSWORD", "s3cret"))
    return [Step((str(venv / "bin" / c[0]), *c[1:]), env, ok) for c in commands]


def run(batch: list[Step]) -> subprocess.CompletedProcess:
    call = one_interpreter.call("tool", batch, reads=(), writes=())
    return subprocess.run(call.argv, env={**call.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_each_command_runs_in_order_in_a_fresh_child_of_one_import(venv):
    batch = steps(venv, ("tool-manage", "first"), ("tool-status", "second"), ("tool-manage", "third"))
    proc = run(batch)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len([x for x in lines if x.startswith("imported")]) == 1  # both programs: one module, imported once
    runs = [x.split(" ", 2) for x in lines if x.startswith("run")]
    assert [r[2] for r in runs] == ["first ['first'] s3cret", "second ['second'] s3cret", "third ['third'] s3cret"]
    assert len({r[1] for r in runs}) == 3 and lines[0].split()[1] not in {r[1] for r in runs}
    assert one_interpreter.argvs(one_interpreter.call("tool", batch, (), ())) == [s.argv for s in batch]


def test_an_exit_among_a_commands_ok_ones_goes_on_another_ends_the_batch_naming_it(venv):
    ok = run(steps(venv, ("tool-manage", "exists", "2"), ("tool-manage", "next"), ok=(0, 2)))
    assert ok.returncode == 0 and "run" in ok.stdout.splitlines()[-1]
    batch = steps(venv, ("tool-manage", "first"), ("tool-status", "fails", "3"), ("tool-manage", "never"))
    proc = run(batch)
    assert proc.returncode == 3 and "never" not in proc.stdout
    assert one_interpreter.failed_step(proc.stderr, batch) == batch[1]


def test_a_command_that_raises_fails_with_its_traceback(venv):
    batch = steps(venv, ("tool-manage", "raise"), ("tool-manage", "never"))
    proc = run(batch)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr and "never" not in proc.stdout
    assert one_interpreter.failed_step(proc.stderr, batch) == batch[0]


def test_commands_of_two_venvs_or_with_one_variable_set_two_ways_do_not_share(venv, tmp_path):
    a, b = steps(venv, ("tool-manage", "a"), ("tool-manage", "b"))
    assert one_interpreter.can_share([a, b])
    assert not one_interpreter.can_share([a, Step(b.argv, (("PYTHONPATH", "/elsewhere"),))])
    assert not one_interpreter.can_share([a, Step(("/opt/openstack/other-1/bin/tool-manage", "b"))])


def test_a_program_changed_since_it_was_installed_runs_as_itself(venv):
    """A script in bin/ that is not the one the installer wrote (a wrapper, a hotfix, a planted failure) is
    executed, not bypassed through its entry point; the others still share the interpreter's import."""
    (venv / "bin" / "tool-status").write_text("#!/bin/sh\necho planted: this one fails >&2\nexit 3\n")
    batch = steps(venv, ("tool-manage", "first"), ("tool-status", "anything"), ("tool-manage", "never"))
    proc = run(batch)
    assert proc.returncode == 3 and "planted: this one fails" in proc.stderr, proc.stderr
    assert "run" in proc.stdout and "first" in proc.stdout and "never" not in proc.stdout
    assert one_interpreter.failed_step(proc.stderr, batch) == batch[1]

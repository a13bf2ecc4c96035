"""Helpers the tests share: small real pbr projects in local git repositories, free ports for deployments."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z",
           "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z", "PATH": "/usr/bin:/bin"}


def git(repo: Path, *args: str, raw: bool = False) -> str:
    out = subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True).stdout
    return out if raw else out.strip()


def pbr_project(root: Path, name: str, *, message: str = "hello from", requires: str = "oslo.i18n>=6.0.0",
                tags: tuple[str, ...] = ("1.2.0",)) -> Path:
    """A pbr project in a git repo: one console script printing `<message> <name> <version>`.

    Each tag gets its own commit (the message gains the tag), so refs differ in content.
    """
    repo = root / name
    pkg = name.replace("-", "_")
    (repo / pkg).mkdir(parents=True)
    (repo / "setup.py").write_text("import setuptools\nsetuptools.setup(setup_requires=['pbr'], pbr=True)\n")
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["pbr>=6.0.0", "setuptools>=64"]\nbuild-backend = "pbr.build"\n')
    (repo / "setup.cfg").write_text(textwrap.dedent(f"""\
        [metadata]
        name = {name}
        summary = test fixture
        author = t
        author_email = t@example.org
        python_requires = >=3.10

        [files]
        packages = {pkg}

        [entry_points]
        console_scripts =
            {name} = {pkg}.cli:main
        """))
    (repo / "requirements.txt").write_text(requires + "\n")
    (repo / "README.rst").write_text(f"{name}\n")
    (repo / pkg / "__init__.py").write_text("")
    git(repo.parent, "init", "-q", "-b", "master", name)
    for tag in tags:
        (repo / pkg / "cli.py").write_text(textwrap.dedent(f"""\
            from importlib.metadata import version

            MESSAGE = "{message}"
            RELEASE = "{tag}"


            def main():
                print(MESSAGE, "{name}", version("{name}"))
            """))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"release {tag}")
        git(repo, "tag", "-a", tag, "-m", tag)
    return repo


def make_patch(repo: Path, ref: str, old: str, new: str, out: Path) -> Path:
    """A git-format patch against ref replacing old with new in the package's cli.py (repo left as it was)."""
    pkg = repo.name.replace("-", "_")
    cli = repo / pkg / "cli.py"
    git(repo, "checkout", "-q", ref)
    text = cli.read_text()
    assert old in text
    cli.write_text(text.replace(old, new))
    out.write_text(git(repo, "diff", raw=True))
    git(repo, "checkout", "-q", "--", ".")
    git(repo, "checkout", "-q", "master")
    return out


def assert_clean_failure(res, out: Path, *needles: str) -> None:
    """A bad input's run: exit 2, no traceback, each needle in the message, `out` as `out_dir` left it."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, f"{needle!r} not in:\n{res.stderr}"
    assert sorted(p.name for p in out.iterdir()) == ["sentinel.txt"]


def free_ports(n: int, host: str = "127.0.0.1", low: int = 20000, high: int = 32000) -> list[int]:
    """n distinct ports nothing listens on, below the ephemeral range. Each worker of a run (pytest-xdist) picks
    from its own share of the range: a port is only free until the deployment that got it binds it, minutes
    later, and the other worker's deployment must not take it meanwhile."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        share = (high - low) // count
        low += share * int(worker.removeprefix("gw"))
        high = low + share
    out: list[int] = []
    for port in random.sample(range(low, high), 400):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        out.append(port)
        if len(out) == n:
            return out
    raise AssertionError(f"no {n} free ports between {low} and {high}")


def services_with_free_ports() -> dict:
    """examples/deploy/services.yaml with every port replaced by a free one."""
    services = yaml.safe_load((REPO / "examples" / "deploy" / "services.yaml").read_text())
    ports = iter(free_ports(7 + 2 * len(services["services"])))
    b = services["backing"]
    b["mariadb"]["port"], b["memcached"]["port"] = next(ports), next(ports)
    b["rabbitmq"].update(port=next(ports), dist_port=next(ports), epmd_port=next(ports))
    b["ovn"] = {"nb_port": next(ports), "sb_port": next(ports)}
    for s in services["services"].values():
        s["port"], s["backend_port"] = next(ports), next(ports)
    return services


def manifest(tmp_path: Path, body: str) -> Path:
    """A manifest file with this text (stackcrate.yaml in tmp_path)."""
    p = tmp_path / "stackcrate.yaml"
    p.write_text(body)
    return p


def git_manifest(repo: Path, ref: str = "1.2.0", extra: str = "") -> str:
    return f'series: "2026.1"\ncomponents:\n  - name: fixture-svc\n    git: {{url: "{repo}", ref: "{ref}"}}\n{extra}'

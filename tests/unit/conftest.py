"""The unit tier: offline, no root, quick (under a minute on two cores).

- The series data is the project's own small snapshot (tests/data), never the network.
- Every HTTP request a test (or a program it runs) makes goes to a dead proxy on loopback and fails at once,
  and Python sockets to anything but loopback are refused: a test that needs the network fails, loudly.
- `stackcrate` runs the real command line in this process (no interpreter start-up per call); the
  `stackcrate_process` fixture runs it as its own process where that matters.
- Each test gets 30 seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stackcrate import tools
from tests.conftest import CLI, SNAPSHOT_REQS

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once
OFFLINE_ENV = {"http_proxy": DEAD, "https_proxy": DEAD, "HTTP_PROXY": DEAD, "HTTPS_PROXY": DEAD,
               "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
               "STACKCRATE_CONSTRAINTS_DIR": str(SNAPSHOT_REQS), "STACKCRATE_INDEX_URL": f"{DEAD}/simple",
               "STACKCRATE_DEBIAN_MIRROR": f"{DEAD}/debian", "PIP_CONFIG_FILE": "/dev/null"}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/unit/" in str(item.fspath) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(30))


@pytest.fixture(autouse=True)
def _offline(monkeypatch, cache_dir):
    for k, v in OFFLINE_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("STACKCRATE_CACHE_DIR", str(cache_dir))  # nothing goes to the user's own cache
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and self.family in (socket.AF_INET, socket.AF_INET6) \
                and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"unit tests run offline: connection to {address} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    # every outside connection is refused at once: pausing before each retry would only slow the tier (4.5 s of
    # the kilo inventory test); the retries themselves still happen
    monkeypatch.setattr(tools, "RETRY_PAUSE", 0.0)


@pytest.fixture(scope="session")
def constraints_dir() -> Path:
    return SNAPSHOT_REQS


@pytest.fixture(scope="session")
def sc_env(cache_dir) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["STACKCRATE_CACHE_DIR"] = str(cache_dir)
    env.pop("SOURCE_DATE_EPOCH", None)
    return env


class InProcessCLI:
    """The real command line (stackcrate.cli.run), in this process, with its own environment, working folder,
    standard input and captured output; returns what a subprocess would."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args, cwd: Path | None = None, env: dict[str, str] | None = None,
                 input: str | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
        from stackcrate.cli import run

        argv = [str(a) for a in args]
        saved_env, saved_cwd, saved_stdin = dict(os.environ), os.getcwd(), sys.stdin
        out, err = io.StringIO(), io.StringIO()
        try:
            os.environ.clear()
            os.environ.update(self.env)
            os.environ.update(env or {})
            if cwd:
                os.chdir(cwd)
            sys.stdin = io.StringIO(input or "")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(argv)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
            sys.stdin = saved_stdin
        return subprocess.CompletedProcess(["stackcrate", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def stackcrate(sc_env) -> InProcessCLI:
    return InProcessCLI(sc_env)


@pytest.fixture(scope="session")
def stackcrate_process(sc_env) -> CLI:
    return CLI(sc_env)

"""tools: programs that finish or hang, daemons, and HTTP against a real server on loopback (retries on
transient answers, none on final ones, one error style)."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import stat
import threading
import time

import pytest

from stackcrate import tools
from stackcrate.cache import Cache
from stackcrate.errors import StackcrateError


def test_run_captures_output_and_fails_with_the_tail():
    assert tools.run(["sh", "-c", "echo out; echo err >&2"]).stdout == "out\n"
    with pytest.raises(tools.ToolFailed) as exc:
        tools.run(["sh", "-c", "echo first >&2; echo last >&2; exit 3"])
    assert exc.value.returncode == 3 and "failed (exit 3)" in str(exc.value) and "last" in str(exc.value)
    assert tools.run(["sh", "-c", "exit 4"], check=False).returncode == 4


def test_a_hung_program_is_stopped_at_its_time_limit():
    start = time.monotonic()
    with pytest.raises(tools.ToolFailed, match="did not finish within 1s"):
        tools.run(["sleep", "30"], timeout=1, check=False)
    assert time.monotonic() - start < 10


def test_missing_program_names_its_package():
    with pytest.raises(StackcrateError, match="apt-get install no-such-pkg"):
        tools.which("no-such-program-stackcrate", "no-such-pkg")
    with pytest.raises(StackcrateError, match="does not exist"):
        tools.run(["/no/such/program"])


def test_spawn_detaches_into_its_own_session_and_appends_to_its_log(tmp_path):
    log = tmp_path / "log" / "d.log"
    pid = tools.spawn(["sh", "-c", "echo $$ > started; echo out; echo err >&2; sleep 5"], log_file=log, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while "err" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.read_text().splitlines() == ["out", "err"]
        assert stat.S_IMODE(log.stat().st_mode) & 0o007 == 0  # logs are never world-readable
        assert os.getsid(pid) == pid  # a session of its own: signals reach its whole group
        tools.spawn(["sh", "-c", "echo again"], log_file=log)
        while "again" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.read_text().splitlines() == ["out", "err", "again"]  # appended, not overwritten
    finally:
        os.killpg(pid, signal.SIGKILL)


class Handler(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        code = self.answers.pop(0) if self.answers else 200
        body = f"answer {code}".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Handler.answers, Handler.seen = [], []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_http_retries_a_transient_answer(server):
    Handler.answers = [503, 502]
    assert tools.http(f"{server}/x", retries=2).text() == "answer 200"
    assert Handler.seen == ["/x", "/x", "/x"]


def test_http_does_not_retry_a_final_answer(server):
    Handler.answers = [404]
    with pytest.raises(tools.FetchFailed) as exc:
        tools.http(f"{server}/missing", retries=2, hint="do this")
    assert exc.value.status == 404 and Handler.seen == ["/missing"]
    assert f"cannot fetch {server}/missing: HTTP 404" in exc.value.render() and "hint: do this" in exc.value.render()


def test_http_to_nothing_fails_naming_the_url():
    with pytest.raises(tools.FetchFailed) as exc:
        tools.http("http://127.0.0.1:9/x", retries=0)
    assert exc.value.status is None and "cannot fetch http://127.0.0.1:9/x" in exc.value.render()


def test_download_writes_the_file_whole_and_returns_its_sha256(server, tmp_path):
    Handler.answers = [500]
    dest = tmp_path / "f.bin"
    assert tools.download(f"{server}/f", dest, retries=1) == hashlib.sha256(b"answer 200").hexdigest()
    assert dest.read_bytes() == b"answer 200" and list(tmp_path.iterdir()) == [dest]


def test_a_cache_lock_held_too_long_fails_naming_the_entry(tmp_path):
    cache = Cache(tmp_path)
    with cache.locked("component:abc"):
        other = threading.Thread  # a second holder in this process: flock locks are per open file
        errors: list[str] = []

        def try_lock():
            try:
                with Cache(tmp_path).locked("component:abc", timeout=0.5):
                    pass
            except StackcrateError as exc:
                errors.append(exc.render())

        t = other(target=try_lock)
        t.start()
        t.join(10)
    assert errors and "component:abc has been locked by another stackcrate process" in errors[0]


def test_a_host_is_looked_up_once_however_many_requests_go_to_it_at_once(server, monkeypatch):
    calls = []
    real = tools.socket.getaddrinfo

    def counting(host, *args, **kwargs):
        calls.append(host)
        time.sleep(0.2)  # a slow resolver: the other requests must wait for this lookup, not make their own
        return real(host, *args, **kwargs)

    monkeypatch.setattr(tools.socket, "getaddrinfo", counting)
    monkeypatch.setattr(tools, "_lookups", {})
    url = server.replace("127.0.0.1", "localhost")
    threads = [threading.Thread(target=tools.http, args=(f"{url}/x{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(Handler.seen) == [f"/x{i}" for i in range(6)]
    assert calls.count("localhost") == 1  # (the connections then name the address: no lookup)


def test_output_of_streams_a_programs_output_and_fails_on_its_exit_status():
    with tools.output_of(["sh", "-c", "printf 'a%.0s' $(seq 100000)"]) as out:
        assert out.read() == b"a" * 100000
    with pytest.raises(tools.ToolFailed) as exc, tools.output_of(["sh", "-c", "echo half; echo broke >&2; exit 3"]):
        pass
    assert exc.value.returncode == 3 and "broke" in exc.value.stderr
    with pytest.raises(tools.ToolFailed) as exc, tools.output_of(["sleep", "30"], timeout=0.5):
        pass
    assert "did not finish within" in str(exc.value)


def test_process_age_counts_from_the_process_start_and_is_none_once_it_is_gone():
    import subprocess

    mine = tools.process_age(os.getpid())
    time.sleep(0.3)
    child = subprocess.Popen(["sleep", "30"])
    try:
        age, now_mine = tools.process_age(child.pid), tools.process_age(os.getpid())
        assert age is not None and 0 <= age < 0.3  # started after the sleep (a fork and an exec ago)
        assert mine is not None and now_mine >= mine + 0.3 - 0.01  # /proc's clocks count in 10 ms ticks
    finally:
        child.kill()
        child.wait()
    assert tools.process_age(child.pid) is None

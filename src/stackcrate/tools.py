"""Every external program and every HTTP request goes through here, so "how we call X" is in one file.

- `run`: a program that finishes (captured output, a time limit, ToolFailed on a non-zero exit);
- `spawn`: a long-running daemon, detached into its own session with its output appended to a log file;
- `coprocess`: a program we talk to through its standard input and output while it runs;
- `which`: where a program is, with the Debian package to install when it is missing;
- `uv`, `git`: those two with the environment that makes them depend only on our inputs;
- `http`, `download`: one way to fetch over HTTP: time limits, retries on transient failures, and one error
  style naming the URL and what to do;
- `xmlrpc_unix`: XML-RPC over HTTP on a unix socket (how we talk to supervisord);
- `serve_folder`: a folder served over HTTP for as long as a block runs (the apt repository hosts install from);
- `in_netns`: the calling thread inside a named network namespace for a block (the lab's).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import http.client
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from .errors import StackcrateError

log = logging.getLogger("stackcrate")

CompletedProcess = subprocess.CompletedProcess  # what run() returns, for callers' annotations

# Where daemons and admin programs live on Debian; a non-root PATH often lacks them.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
DEFAULT_TIMEOUT = 3600.0  # no external program may run forever, even a build


class ToolFailed(StackcrateError):
    """An external program exited non-zero (or ran out of time); callers usually turn this into a more
    specific error."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str, timed_out: float = 0):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        what = f"did not finish within {timed_out:.0f}s" if timed_out else f"failed (exit {returncode})"
        super().__init__(f"`{shlex.join(self.argv[:4])}...` {what}:\n{tail}")


def which(name: str, package_hint: str | None = None) -> str:
    """The path of a program (PATH first, then the sbin folders); a clear error naming its package if absent."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if not path:
        raise StackcrateError(f"the program {name!r} is not installed",
                              hint=f"install it (apt-get install {package_hint or name})")
    return path


def _env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    full = dict(os.environ)
    full.update(env)
    return full


def run(argv: Sequence[str | Path], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        input: str | bytes | None = None, check: bool = True, umask: int = -1,
        timeout: float | None = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a program to completion, capturing its output (text, also when input is bytes); ToolFailed on a
    non-zero exit (when check) or when it outlives timeout (always: a hung program is never a success).
    umask: the program's own (-1: this process's)."""
    args = [str(a) for a in argv]
    log.debug("run: %s%s", shlex.join(args), f"  (in {cwd})" if cwd else "")
    binary = isinstance(input, bytes)
    try:
        proc = subprocess.run(args, cwd=cwd, env=_env(env), input=input, capture_output=True, text=not binary,
                              timeout=timeout, check=False, umask=umask)
        if binary:
            proc = subprocess.CompletedProcess(args, proc.returncode, proc.stdout.decode(errors="replace"),
                                               proc.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise ToolFailed(args, -9, out, err, timed_out=timeout or 0) from None
    except FileNotFoundError:
        raise StackcrateError(f"the program {args[0]} does not exist",
                              hint="install it, or check the path it is run from") from None
    if check and proc.returncode != 0:
        raise ToolFailed(args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def spawn(argv: Sequence[str | Path], *, log_file: Path, env: Mapping[str, str] | None = None,
          cwd: Path | str | None = None, umask: int = 0o027) -> int:
    """Start a daemon detached from us (own session: it outlives the CLI and gets signals as a group), stdin
    closed, stdout and stderr appended to log_file, files it creates not world-readable (umask). Returns its
    pid; it is never waited for here."""
    args = [str(a) for a in argv]
    log.debug("spawn: %s  (log %s)", shlex.join(args), log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                env=_env(env), cwd=cwd, start_new_session=True, close_fds=True, umask=umask)
    except FileNotFoundError:
        raise StackcrateError(f"the program {args[0]} does not exist",
                              hint="install it, or check the path it is run from") from None
    finally:
        os.close(fd)
    return proc.pid


def coprocess(argv: Sequence[str | Path], *, log_file: Path,
              env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a program we talk to in lines of text through its stdin and stdout while it runs, in a session of
    its own, its stderr written to log_file. The caller ends it: stdin closed, then a bounded wait (and a kill)."""
    args = [str(a) for a in argv]
    log.debug("coprocess: %s  (log %s)", shlex.join(args), log_file)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd, text=True,
                                bufsize=1, env=_env(env), start_new_session=True, close_fds=True)
    except FileNotFoundError:
        raise StackcrateError(f"the program {args[0]} does not exist",
                              hint="install it, or check the path it is run from") from None
    finally:
        os.close(fd)


def end_coprocess(proc: subprocess.Popen, timeout: float) -> None:
    """End a coprocess: its stdin closed (its sign to finish), then killed if it outlives timeout."""
    with contextlib.suppress(OSError):  # it ended already
        proc.stdin.close()  # type: ignore[union-attr]
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def log_end(log_file: Path, chars: int = 1500) -> str:
    """The end of a spawned program's log file, for an error that says why it did not start."""
    try:
        return log_file.read_text(errors="replace")[-chars:].strip() or "(no output)"
    except OSError:
        return "(no output)"


@contextlib.contextmanager
def output_of(argv: Sequence[str | Path], *, cwd: Path | str | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> Iterator[BinaryIO]:
    """A program's standard output as a stream while it runs (for data too big to hold: a tar of a tree). After
    the block the program must have exited 0; ToolFailed otherwise, or when it outlives timeout (killed)."""
    import tempfile

    args = [str(a) for a in argv]
    log.debug("run: %s%s", shlex.join(args), f"  (in {cwd})" if cwd else "")
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            yield proc.stdout
            proc.stdout.read()  # what the block did not want, so the program can finish
            code = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if code != 0:
        raise ToolFailed(args, code, "", stderr, timed_out=timeout if code == -signal.SIGKILL else 0)


def run_streaming(argv: Sequence[str | Path], *, on_line: Callable[[str], None], log_file: Path,
                  env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
                  timeout: float = DEFAULT_TIMEOUT) -> int:
    """Run a long program, handing each line of its output (stdout and stderr together) to on_line as it comes
    and appending it to log_file; its exit status. Killed (with its process group) when it outlives timeout."""
    import threading

    args = [str(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=_env(env), cwd=cwd, text=True, errors="replace", start_new_session=True)
    except FileNotFoundError:
        raise StackcrateError(f"the program {args[0]} does not exist",
                              hint="install it, or check the path it is run from") from None
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        with open(log_file, "a") as out:
            for line in proc.stdout:  # type: ignore[union-attr]
                out.write(line)
                out.flush()
                on_line(line.rstrip("\n"))
        proc.wait()
    finally:
        timer.cancel()
    if timed_out.is_set():
        raise ToolFailed(args, -9, "", f"killed after {timeout:.0f}s (see {log_file})", timed_out=timeout)
    return proc.returncode


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name, which may hold spaces and parentheses itself: [0] is
    field 3 (the state)."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """The process runs: it exists and is not a zombie waiting for its parent to reap it."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def process_age(pid: int) -> float | None:
    """Seconds since the process started, by the boot clock (setting the time of day moves neither end); None
    when it is gone."""
    try:
        ticks = int(_stat_fields(pid)[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/uptime") as fh:
            up = float(fh.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, up - ticks / os.sysconf("SC_CLK_TCK"))


CLONE_NEWNET = 0x40000000


def _setns(fd: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns into {what}: {os.strerror(err)}")


def enter_netns(name: str) -> None:
    """The calling thread into the network namespace `ip netns` knows as name (root only)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(fd, name)
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_netns(name: str | None):
    """The calling thread inside the named network namespace for the block, then back where it was; a socket
    made inside stays there. None: where it is."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter_netns(name)
        try:
            yield
        finally:
            _setns(home, "the thread's own network namespace")
    finally:
        os.close(home)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("serve: %s %s", self.address_string(), format % args)


@contextlib.contextmanager
def serve_folder(folder: Path, host: str, netns: str | None = None):
    """folder over HTTP at host on a free port (opened inside netns when given) while the block runs; yields the
    base URL. Read-only: GET and HEAD of the folder's files."""
    with in_netns(netns):
        server = ThreadingHTTPServer((host, 0), functools.partial(_QuietFiles, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"serve {folder}", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def uv_bin() -> str:
    """The uv binary shipped with the `uv` Python package (so the version is the one we depend on)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):  # pragma: no cover - only when the uv package is broken
        return which("uv")


# uv must not read a user's config or the host's pip config: resolution depends only on our inputs.
UV_ENV = {"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}


def uv(args: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
       check: bool = True, cache_dir: Path | None = None) -> subprocess.CompletedProcess:
    e = dict(UV_ENV)
    if cache_dir is not None:
        e["UV_CACHE_DIR"] = str(cache_dir)
    if env:
        e.update(env)
    return run([uv_bin(), *args], cwd=cwd, env=e, check=check)


# git: never prompt, never read the user's or system config (so tests and CI behave the same).
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ASKPASS": "/bin/true",
    "GIT_AUTHOR_NAME": "stackcrate",
    "GIT_AUTHOR_EMAIL": "stackcrate@localhost",
    "GIT_COMMITTER_NAME": "stackcrate",
    "GIT_COMMITTER_EMAIL": "stackcrate@localhost",
}


def git(args: Sequence[str], *, cwd: Path | str | None = None, check: bool = True,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    e = dict(GIT_ENV)
    if env:
        e.update(env)
    return run([which("git"), "-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false", *args],
               cwd=cwd, env=e, check=check)


def dpkg_deb(args: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Debian's own .deb tool: builds packages (package/deb.py) and reads their fields (publish.py)."""
    return run([which("dpkg-deb", "dpkg"), *args], env=env)


# ---------------------------------------------------------------------------------------------- HTTP

class FetchFailed(StackcrateError):
    """An HTTP request failed: `status` is the HTTP status, or None when no answer came (network, timeout)."""

    def __init__(self, url: str, reason: str, status: int | None, hint: str | None):
        self.url = url
        self.status = status
        self.reason = reason
        super().__init__(f"cannot fetch {url}: {reason}", hint=hint or "check the URL and the network")


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else {}

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _opener(*handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
    """urllib's opener with the proxies the environment names now (urlopen's own keeps those of its first call
    in the process for good), connecting by the host's looked-up addresses (`_addresses`)."""
    ours = [h for h in (_HTTPHandler, _HTTPSHandler) if not any(isinstance(given, h) for given in handlers)]
    return urllib.request.build_opener(*ours, *handlers)


LOOKUP_TTL = 60.0
_lookups: dict[tuple, tuple[float, list]] = {}
_lookup_locks: dict[tuple, threading.Lock] = {}
_lookups_lock = threading.Lock()


def _addresses(host: str, port: int) -> list[tuple]:
    """The host's addresses, looked up once a minute per network namespace however many requests go to it.

    A build fetches ~170 files from one host, eight at a time. Where the resolver sometimes loses one of the
    two queries glibc sends together (A and AAAA), each lookup that loses one waits the resolver's 5-second
    timeout: that was a third of a cold build's downloads on these machines. One lookup at a time per host,
    shared, costs that at most once. The resolver's own timeout bounds the wait."""
    key = (host, port, os.readlink("/proc/thread-self/ns/net"))
    with _lookups_lock:
        lock = _lookup_locks.setdefault(key, threading.Lock())
    with lock:
        hit = _lookups.get(key)
        if hit and time.monotonic() - hit[0] < LOOKUP_TTL:
            return hit[1]
        found = [info[4] for info in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)]
        _lookups[key] = (time.monotonic(), found)
        return found


def _connect(address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
             source_address: Any = None) -> socket.socket:
    """socket.create_connection by `_addresses`: each address in turn, the first that answers."""
    host, port = address
    error: OSError | None = None
    for sockaddr in _addresses(host, port):
        try:
            return socket.create_connection(sockaddr[:2], timeout, source_address)
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address found for {host}")


class _LookedUp:
    """An http.client connection that connects by `_addresses` (its __init__ sets socket.create_connection)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._create_connection = _connect


class _LookedUpHTTP(_LookedUp, http.client.HTTPConnection):
    pass


class _LookedUpHTTPS(_LookedUp, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_LookedUpHTTP, req, **kwargs)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_LookedUpHTTPS, req, **kwargs)


RETRY_PAUSE = 0.5  # seconds before the second attempt of a request; doubled for each next one, at most 8 times it


def _pause(attempt: int) -> None:
    time.sleep(min(RETRY_PAUSE * 2 ** (attempt - 1), 8 * RETRY_PAUSE))


def _failed(url: str, exc: Exception, hint: str | None) -> FetchFailed:
    """What went wrong with a request: an answer's status and the start of its body, or why none came."""
    if isinstance(exc, urllib.error.HTTPError):
        detail = exc.read()[:300].decode("utf-8", "replace").strip() if exc.fp else ""
        return FetchFailed(url, f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else ""), exc.code, hint)
    return FetchFailed(url, str(getattr(exc, "reason", exc)), None, hint)


def http(url: str, *, method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] | None = None,
         timeout: float = 30, retries: int = 2, hint: str | None = None, quiet: bool = False) -> Response:
    """One HTTP request. Network errors and 429/5xx answers are retried (idempotent methods only) with a
    growing pause; any other answer of 400 or more raises FetchFailed with its status at once.

    quiet: the caller probes (a health check): no debug log line per attempt.
    """
    attempts = 1 + (retries if method in IDEMPOTENT else 0)
    last: FetchFailed | None = None
    for attempt in range(attempts):
        if attempt:
            _pause(attempt)
        req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if not quiet:
            log.debug("http: %s %s", method, url)
        try:
            with _opener().open(req, timeout=timeout) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            last = _failed(url, exc, hint)
            if exc.code not in RETRY_STATUSES:
                raise last from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = _failed(url, exc, hint)
    assert last is not None
    raise last


class WebSession:
    """A browser's HTTP conversation with one site: cookies kept between requests (a login's session and CSRF
    cookies), redirects followed; each request has a time limit. Any answer of 400 or more raises FetchFailed
    with its status."""

    def __init__(self, timeout: float = 30, context: Any = None):
        import http.cookiejar

        self.cookies = http.cookiejar.CookieJar()
        self.timeout = timeout
        handlers: list = [urllib.request.HTTPCookieProcessor(self.cookies)]
        if context is not None:  # an ssl.SSLContext trusting the site's CA
            handlers.append(_HTTPSHandler(context=context))
        self._opener = _opener(*handlers)

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def request(self, url: str, form: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[str, Response]:
        """GET url, or POST the form to it; returns the URL answered after redirects and the answer."""
        import urllib.parse

        body = urllib.parse.urlencode(dict(form)).encode() if form is not None else None
        req = urllib.request.Request(url, data=body, headers=dict(headers or {}))
        log.debug("http: %s %s", "POST" if body is not None else "GET", url)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.geturl(), Response(resp.status, resp.headers, resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError
            raise _failed(url, exc, None) from None


def download(url: str, dest: Path, *, timeout: float = 120, retries: int = 2, hint: str | None = None) -> str:
    """Stream url into dest (written beside it, renamed into place); returns the sha256 of what was written."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    for attempt in range(1 + retries):
        if attempt:
            _pause(attempt)
        h = hashlib.sha256()
        try:
            log.debug("download: %s", url)
            with _opener().open(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                _copy(resp, fh, h)
            tmp.replace(dest)
            return h.hexdigest()
        except urllib.error.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            if exc.code not in RETRY_STATUSES or attempt == retries:
                raise FetchFailed(url, f"HTTP {exc.code} {exc.reason}", exc.code, hint) from None
        except (urllib.error.URLError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            if attempt == retries:
                raise FetchFailed(url, str(getattr(exc, "reason", exc)), None, hint) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _copy(src: BinaryIO, dst: BinaryIO, h: Any) -> None:
    while block := src.read(1 << 20):
        h.update(block)
        dst.write(block)


class _UnixHTTPConnection(HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path, self._timeout = path, timeout

    def make_connection(self, host):  # noqa: ARG002 - the host is the socket
        return _UnixHTTPConnection(self._path, self._timeout)


def xmlrpc_unix(path: Path, timeout: float = 30) -> xmlrpc.client.ServerProxy:
    """An XML-RPC client over a unix socket (supervisord's control interface); every call has a time limit.
    Errors are the xmlrpc/OSError ones: callers say what failed."""
    return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=_UnixTransport(str(path), timeout),
                                     allow_none=True)

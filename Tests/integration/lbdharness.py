"""Harness for lbd integration tests: config writing, the lbd process, raw HTTP clients,
hostile backends and a TCP echo server. Everything binds 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from backend import Backend, BufferedSocket, PeerClosed, ProtocolError  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
LBD_BIN = os.environ.get("LBD_BIN", str(REPO / ".build" / "debug" / "lbd"))
HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# Ports and config

_given_ports: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, and not one this process was given before: the kernel may
    hand the same free port to two bind(0) calls in a row (CI once got one port for a listener
    and the admin endpoint of the same lbd)."""
    for _ in range(100):
        s = socket.socket()
        s.bind((HOST, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given_ports:
            break
    if len(_given_ports) > 20_000:
        _given_ports.clear()
    _given_ports.add(port)
    return port


class RefusingPort:
    """A port that refuses connections: bound but not listening (the kernel answers RST), and
    held so nobody else takes it during the test."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"{HOST}:{self.port}"

    def close(self):
        self.sock.close()


DEFAULT_TIMEOUTS = {
    "client_head": "10s", "client_idle": "60s", "backend_connect": "2s", "backend_response": "30s",
    "backend_idle": "30s", "tcp_idle": "5m", "shutdown_grace": "10s",
}
DEFAULT_LIMITS = {
    "max_request_line": 8192, "max_header_bytes": 32768, "max_header_count": 100,
    "max_chunk_extension": 4096, "max_pipeline_depth": 32, "max_buffer": 262144,
}


def pool(backends, balance="round_robin", retries=2, **extra) -> dict:
    """backends: list of "host:port" or (address, weight)."""
    static = []
    for b in backends:
        if isinstance(b, tuple):
            addr, w = b
            static.append(addr if w == 1 else {"address": addr, "weight": w})
        else:
            static.append(b)
    p = {"balance": balance, "retries": retries, "groups": {"main": {"share": 100, "static": static}}}
    p.update(extra)
    return p


def listener(name, port, pool_name="web", mode="http", maxconn=10000) -> dict:
    return {"name": name, "bind": f"{HOST}:{port}", "mode": mode, "pool": pool_name, "maxconn": maxconn}


def make_config(pools: dict, listeners: list, workers=2, timeouts=None, limits=None, log=None, **top) -> dict:
    """`top`: more top-level sections as they are written in the file (resolvers, state_file...)."""
    t = dict(DEFAULT_TIMEOUTS)
    t.update(timeouts or {})
    lim = dict(DEFAULT_LIMITS)
    lim.update(limits or {})
    lg = {"level": "info", "access_log": True}
    lg.update(log or {})
    cfg = {"workers": workers, "timeouts": t, "limits": lim, "log": lg, "pools": pools, "listeners": listeners}
    cfg.update(top)
    return cfg


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def _emit(obj, ind: int) -> list[str]:
    sp = " " * ind
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{sp}{k}:")
                out += _emit(v, ind + 2)
            elif isinstance(v, dict):
                out.append(f"{sp}{k}: {{}}")
            elif isinstance(v, list):
                out.append(f"{sp}{k}: []")
            else:
                out.append(f"{sp}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)):
                sub = _emit(item, ind + 2)
                sub[0] = sp + "- " + sub[0].lstrip()
                out += sub
            else:
                out.append(f"{sp}- {_scalar(item)}")
    else:
        out.append(sp + _scalar(obj))
    return out


def to_yaml(cfg: dict) -> str:
    """Block-style YAML with every string double-quoted."""
    return "\n".join(_emit(cfg, 0)) + "\n"


# ---------------------------------------------------------------------------------------------
# The lbd process

def lbd_available() -> bool:
    return os.path.isfile(LBD_BIN) and os.access(LBD_BIN, os.X_OK)


def run_lbd_cmd(args: list[str], timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run([LBD_BIN, *args], capture_output=True, text=True, timeout=timeout)


def can_connect(port: int, timeout=0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class Lbd:
    """`lbd run --config FILE` in its own process group; stdout/stderr to files."""

    def __init__(self, cfg: dict | str, workdir: Path, name="lbd"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.config_path = self.workdir / f"{name}.yaml"
        self.config_path.write_text(cfg if isinstance(cfg, str) else to_yaml(cfg))
        self.stdout_path = self.workdir / f"{name}.stdout"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ports(self) -> list[int]:
        if isinstance(self.cfg, str):
            return []
        return [int(lst["bind"].rsplit(":", 1)[1]) for lst in self.cfg["listeners"]]

    def start(self, ready_timeout=15.0) -> "Lbd":
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([LBD_BIN, "run", "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     start_new_session=True, cwd=str(self.workdir))
        deadline = time.monotonic() + ready_timeout
        pending = set(self.ports())
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lbd exited with {self.proc.returncode} before listening\n"
                                   f"config:\n{self.config_path.read_text()}\nstderr:\n{self.stderr()}")
            for p in list(pending):
                if can_connect(p, 0.3):
                    pending.discard(p)
            if pending and time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"lbd not listening on {sorted(pending)} after {ready_timeout}s\n"
                                   f"stderr:\n{self.stderr()}")
            if pending:
                time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait(self, timeout) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=12.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds. By PID only."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(grace) is None:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(5)
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass
        return self.proc.returncode

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread; keeps the maximum."""

    def __init__(self, lbd: Lbd, interval=0.1):
        self.lbd = lbd
        self.interval = interval
        self.max_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = self.lbd.rss_kib()
            if v is not None:
                self.max_kib = max(self.max_kib, v)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)


# ---------------------------------------------------------------------------------------------
# Raw HTTP client side

class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (str name, str value)
        self.body = b""
        self.body_len = 0
        self.trailers: list = []
        self.interim: list["Response"] = []

    def header(self, name):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def connection_tokens(self):
        toks = set()
        for v in self.header_all("connection"):
            toks |= {t.strip().lower() for t in v.split(",") if t.strip()}
        return toks

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.reason!r} headers={self.headers} body={self.body[:200]!r}>"


class IncompleteBody(Exception):
    def __init__(self, resp, got):
        super().__init__(f"response body ended early after {got} bytes")
        self.resp = resp
        self.got = got


def connect(port: int, timeout=10.0) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(r: BufferedSocket, method="GET", sink=None, stop_on_interim=False,
                  keep_body=True) -> Response:
    """Reads one response (skipping and recording 1xx unless stop_on_interim). `sink(bytes)`
    receives body pieces. Raises PeerClosed if the connection ends before a status line,
    IncompleteBody if it ends inside a body."""
    interim = []
    while True:
        head = r.read_until(b"\r\n\r\n", 1 << 20)
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:100]!r}")
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            headers.append((k, v.strip(" \t")))
        resp = Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers)
        if 100 <= resp.status < 200 and resp.status != 101:
            interim.append(resp)
            if stop_on_interim:
                resp.interim = interim[:-1]
                return resp
            continue
        resp.interim = interim
        break
    chunks = []

    def take(p):
        resp.body_len += len(p)
        if sink:
            sink(p)
        if keep_body:
            chunks.append(p)

    te = resp.header("transfer-encoding")
    cl = resp.header("content-length")
    try:
        if method == "HEAD" or resp.status in (204, 304) or resp.status == 101:
            pass
        elif te is not None and te.lower().split(",")[-1].strip() == "chunked":
            from backend import parse_chunked
            for p in parse_chunked(r, resp.trailers):
                take(p)
        elif cl is not None:
            left = int(cl)
            while left:
                p = r.read_some(min(left, 1 << 20))
                left -= len(p)
                take(p)
        else:
            r.read_to_eof(take)
    except PeerClosed:
        resp.body = b"".join(chunks)
        raise IncompleteBody(resp, resp.body_len)
    resp.body = b"".join(chunks)
    return resp


def wait_closed(sock: socket.socket, timeout=3.0) -> tuple[bool, bytes]:
    """Whether the peer closes within `timeout` (EOF or reset); returns any bytes that arrived."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    extra = b""
    while True:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return False, extra
        except (ConnectionResetError, BrokenPipeError):
            return True, extra
        if not d:
            return True, extra
        extra += d
        left = deadline - time.monotonic()
        if left <= 0:
            return False, extra
        sock.settimeout(left)


class HttpClient:
    """One keep-alive client connection."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout)
        self.r = BufferedSocket(self.sock)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def request(self, method="GET", path="/", headers=None, body=None, host="lbd.test", **kw) -> Response:
        hs = [("Host", host)] + list(headers or [])
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
            hs.append(("Content-Length", str(len(body))))
        raw = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
        self.sock.sendall(raw.encode("latin-1") + (body or b""))
        return read_response(self.r, method, **kw)

    def read(self, method="GET", **kw) -> Response:
        return read_response(self.r, method, **kw)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get(port, path="/", headers=None, timeout=10.0, **kw) -> Response:
    """One request on a fresh connection."""
    with HttpClient(port, timeout) as c:
        return c.request("GET", path, headers=headers, **kw)


def raw_exchange(port, data: bytes, timeout=5.0, shut_wr=False) -> tuple[socket.socket, BufferedSocket]:
    """Sends raw bytes on a fresh connection (tolerating the peer closing early); returns the
    socket and its reader for the caller to read responses."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return s, BufferedSocket(s)


# ---------------------------------------------------------------------------------------------
# Hostile and simple servers

class ScriptedServer:
    """Accepts connections and runs `handler(sock)` for each in a thread."""

    def __init__(self, handler, name="scripted"):
        self.handler = handler
        self.name = name
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.address = f"{HOST}:{self.port}"
        self.connections = 0
        self.socks = []
        self.stopped = False
        self.lock = threading.Lock()

    def start(self):
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self):
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.socks.append(s)
            threading.Thread(target=self._run, args=(s,), daemon=True).start()

    def _run(self, s):
        try:
            s.settimeout(60)
            self.handler(s)
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


def read_request_head(s: socket.socket, limit=1 << 20) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return buf
        buf += d
        if len(buf) > limit:
            break
    return buf


def blackhole_handler(s):
    """Reads forever, never answers."""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            return


def canned_handler(response: bytes, close=True, linger_rst=False):
    """Reads a request head, writes `response`, closes."""
    def h(s):
        read_request_head(s)
        if response:
            s.sendall(response)
        if linger_rst:
            import struct
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if close:
            s.close()
        else:
            blackhole_handler(s)
    return h


class TcpEchoServer:
    """Echoes bytes; when the client half-closes, waits `eof_delay`, sends `eof_marker` and closes."""

    EOF_MARKER = b"\nEOF-SEEN-BY-BACKEND\n"

    def __init__(self, eof_delay=0.3):
        self.eof_delay = eof_delay
        self.server = ScriptedServer(self._handle, "tcp-echo")
        self.port = self.server.port
        self.address = self.server.address

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()

    def _handle(self, s):
        s.settimeout(120)
        while True:
            d = s.recv(256 * 1024)
            if not d:
                break
            s.sendall(d)
        time.sleep(self.eof_delay)
        s.sendall(self.EOF_MARKER)
        s.shutdown(socket.SHUT_WR)
        s.close()


def is_refused(port, timeout=1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError as e:
        return e.errno == errno.ECONNREFUSED

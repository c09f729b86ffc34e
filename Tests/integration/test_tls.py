"""TLS termination (issue 7): SNI, protocol versions, ALPN, resumption, certificate reload with
connections open, plain HTTP on a TLS port, bad certificate files; with curl, `openssl s_client`
and Python's ssl module against the built lbd. Certificates come from a test CA made per module."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import lbdharness as h

NAMES = {"a": "a.example.test", "b": "b.example.test", "wild": "*.wild.example.test"}


def openssl(*args, input=None, timeout=20) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, input=input, timeout=timeout)


def make_cert(d: Path, name: str, san: str, ca: Path, tag: str = "") -> tuple[Path, Path]:
    key, csr, cert = d / f"{name}{tag}.key", d / f"{name}{tag}.csr", d / f"{name}{tag}.pem"
    r = openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={san}", "-addext", f"subjectAltName=DNS:{san}")
    assert r.returncode == 0, r.stderr
    r = openssl("x509", "-req", "-in", csr, "-CA", ca / "ca.pem", "-CAkey", ca / "ca.key", "-CAcreateserial",
                "-days", "2", "-copy_extensions", "copy", "-out", cert)
    assert r.returncode == 0, r.stderr
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                d / "ca.key", "-out", d / "ca.pem", "-subj", "/CN=lbd test CA", "-days", "2")
    assert r.returncode == 0, r.stderr
    certs = {k: make_cert(d, k, v, d) for k, v in NAMES.items()}
    return d, certs


def tls_lbd(stack, pki, certs=("a", "b", "wild")):
    d, made = pki
    b = stack.backend("tlsb")
    port = h.free_port()
    listener = h.listener("secure", port, "web")
    listener["tls"] = {"certificates": [{"cert": str(made[k][0]), "key": str(made[k][1])} for k in certs]}
    lbd = stack.lbd({"web": h.pool([b.address])}, [listener],
                    admin={"listen": f"127.0.0.1:{h.free_port()}", "token_file": str(stack.workdir / "admin.token")})
    return lbd, b


def s_client(port, *args, input="", servername=None):
    argv = ["s_client", "-connect", f"127.0.0.1:{port}", *args]
    if servername:
        argv += ["-servername", servername]
    return openssl(*argv, input=input)


def subject(out: str) -> str:
    m = re.search(r"^subject=(.*)$", out, re.M)
    return m.group(1) if m else ""


def test_sni_picks_the_certificate_and_the_first_is_the_default(stack, pki):
    lbd, _ = tls_lbd(stack, pki)
    assert "b.example.test" in subject(s_client(lbd.port, servername="b.example.test").stdout)
    assert "*.wild.example.test" in subject(s_client(lbd.port, servername="x.wild.example.test").stdout)
    assert "a.example.test" in subject(s_client(lbd.port, servername="unknown.example.test").stdout)
    assert "a.example.test" in subject(s_client(lbd.port, "-noservername").stdout)
    # A wildcard covers one label only.
    assert "a.example.test" in subject(s_client(lbd.port, servername="x.y.wild.example.test").stdout)


def test_curl_https_alpn_and_forwarded_proto(stack, pki):
    d, _ = pki
    lbd, b = tls_lbd(stack, pki)
    r = subprocess.run(["curl", "-sS", "-v", "--http1.1", "--cacert", str(d / "ca.pem"), "--resolve",
                        f"b.example.test:{lbd.port}:127.0.0.1", f"https://b.example.test:{lbd.port}/headers"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "ALPN: server accepted http/1.1" in r.stderr or "ALPN, server accepted to use http/1.1" in r.stderr, r.stderr
    headers = {k.lower(): v for k, v in json.loads(r.stdout)["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    out = s_client(lbd.port, "-alpn", "http/1.1", servername="a.example.test").stdout
    assert "ALPN protocol: http/1.1" in out
    # A client offering only h2 gets no ALPN, and the handshake still succeeds.
    out = s_client(lbd.port, "-alpn", "h2", servername="a.example.test").stdout
    assert "No ALPN negotiated" in out
    time.sleep(0.2)
    log = lbd.stdout()
    assert re.search(r"tls_version=TLSv1\.3", log) and "tls_cipher=" in log


def test_old_protocols_refused(stack, pki):
    lbd, _ = tls_lbd(stack, pki)
    for flag in ("-tls1_1", "-tls1"):
        r = s_client(lbd.port, flag, "-cipher", "DEFAULT@SECLEVEL=0", servername="a.example.test")
        assert "Cipher is (NONE)" in r.stdout or r.returncode != 0, r.stdout
        assert "BEGIN CERTIFICATE" not in r.stdout
    assert "TLSv1.2" in s_client(lbd.port, "-tls1_2", servername="a.example.test").stdout


def _cipher(out: str) -> str:
    m = re.search(r"Cipher is (\S+)", out)
    return m.group(1) if m else ""


def _tickets(out: str) -> int:
    """NewSessionTicket messages `s_client -msg` saw from the server."""
    return len(re.findall(r"^<<< .*NewSessionTicket", out, re.M))


REQ = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"


def test_server_cipher_order_and_one_ticket(stack, pki):
    """The server's order decides (AES-128-GCM first, even for a client that lists AES-256 first),
    except that a client putting ChaCha20 first gets it; TLS 1.2 offers forward secrecy with AEAD
    only; a full handshake sends one session ticket, which resumes."""
    lbd, _ = tls_lbd(stack, pki)
    sn = "a.example.test"
    out = s_client(lbd.port, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
                   servername=sn).stdout
    assert _cipher(out) == "TLS_AES_128_GCM_SHA256", out[-1500:]
    out = s_client(lbd.port, "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
                   servername=sn).stdout
    assert _cipher(out) == "TLS_CHACHA20_POLY1305_SHA256", out[-1500:]
    assert _cipher(s_client(lbd.port, "-tls1_2", servername=sn).stdout) == "ECDHE-ECDSA-AES128-GCM-SHA256"
    for weak in ("ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256"):   # CBC; no forward secrecy
        r = s_client(lbd.port, "-tls1_2", "-cipher", weak, servername=sn)
        assert _cipher(r.stdout) in ("", "(NONE)") and "BEGIN CERTIFICATE" not in r.stdout, r.stdout[-1500:]
    out = s_client(lbd.port, "-tls1_3", "-msg", "-ign_eof", input=REQ, servername=sn).stdout
    assert "hello from tlsb" in out and _tickets(out) == 1, out[-3000:]


def test_configured_ciphers_and_no_tickets(stack, pki, tmp_path):
    """tls.ciphersuites, tls.ciphers and session_tickets: 0 (no tickets in either version; TLS 1.2
    sessions still resume by ID)."""
    d, made = pki
    b = stack.backend("tlsb")
    port = h.free_port()
    listener = h.listener("secure", port, "web")
    listener["tls"] = {"certificates": [{"cert": str(made["a"][0]), "key": str(made["a"][1])}],
                       "ciphersuites": "TLS_AES_256_GCM_SHA384", "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
                       "session_tickets": 0}
    stack.lbd({"web": h.pool([b.address])}, [listener])
    sn = "a.example.test"
    out = s_client(port, "-tls1_3", "-msg", "-ign_eof", input=REQ, servername=sn).stdout
    assert _cipher(out) == "TLS_AES_256_GCM_SHA384" and "hello from tlsb" in out, out[-1500:]
    assert _tickets(out) == 0, out[-3000:]
    r = s_client(port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256", servername=sn)
    assert _cipher(r.stdout) in ("", "(NONE)"), r.stdout[-1500:]
    assert _cipher(s_client(port, "-tls1_2", servername=sn).stdout) == "ECDHE-ECDSA-AES256-GCM-SHA384"
    sess = tmp_path / "sess.pem"
    first = s_client(port, "-tls1_2", "-msg", "-ign_eof", "-sess_out", str(sess), input=REQ, servername=sn)
    assert "hello from tlsb" in first.stdout and _tickets(first.stdout) == 0, first.stdout[-3000:]
    second = s_client(port, "-tls1_2", "-ign_eof", "-sess_in", str(sess), input=REQ, servername=sn)
    assert "Reused," in second.stdout and "hello from tlsb" in second.stdout, second.stdout[-2000:]


def test_tls_option_problems_by_path(pki, tmp_path):
    d, made = pki
    cert = {"cert": str(made["a"][0]), "key": str(made["a"][1])}
    cfg = h.make_config({"web": h.pool(["127.0.0.1:9"])}, [
        dict(h.listener("a", 8443, "web"), tls={"certificates": [cert], "ciphersuites": "TLS_NOPE_SHA256",
                                                 "ciphers": "NOPE-CIPHER"}),
        dict(h.listener("b", 8444, "web"), tls={"certificates": [cert], "session_tickets": -1}),
    ])
    path = tmp_path / "bad.yaml"
    path.write_text(h.to_yaml(cfg))
    out = h.run_lbd_cmd(["check", "--config", str(path)]).stderr
    assert "listeners[1].tls.session_tickets: -1 is outside 0...8" in out, out
    cfg["listeners"] = cfg["listeners"][:1]
    path.write_text(h.to_yaml(cfg))
    r = h.run_lbd_cmd(["check", "--config", str(path)])
    assert r.returncode == 1
    assert "listeners[0].tls.ciphersuites: OpenSSL accepts no TLS 1.3 suite in 'TLS_NOPE_SHA256'" in r.stderr, r.stderr
    assert "listeners[0].tls.ciphers: OpenSSL accepts no TLS 1.2 cipher in 'NOPE-CIPHER'" in r.stderr, r.stderr


def test_client_renegotiation_is_refused(stack, pki):
    """R6: a TLS 1.2 client asking to renegotiate is refused (no_renegotiation), and lbd keeps
    serving."""
    lbd, _ = tls_lbd(stack, pki)
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{lbd.port}", "-tls1_2",
                          "-servername", "a.example.test"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        p.stdin.write("R\n")   # s_client's command: renegotiate
        p.stdin.flush()
        out = p.communicate(timeout=10)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "RENEGOTIATING" in out and "no renegotiation" in out, out[-1500:]
    req = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"
    assert "hello from tlsb" in s_client(lbd.port, "-tls1_2", "-ign_eof", input=req, servername="a.example.test").stdout


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_session_resumption(stack, pki, tmp_path, version):
    lbd, _ = tls_lbd(stack, pki)
    sess = tmp_path / "sess.pem"
    req = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"
    first = s_client(lbd.port, version, "-ign_eof", "-sess_out", str(sess), input=req, servername="a.example.test")
    assert "hello from tlsb" in first.stdout and sess.exists()
    second = s_client(lbd.port, version, "-ign_eof", "-sess_in", str(sess), input=req, servername="a.example.test")
    assert "Reused," in second.stdout, second.stdout[-2000:]
    assert "hello from tlsb" in second.stdout


def test_tls13_resumption_brings_a_fresh_ticket(stack, pki, tmp_path):
    """A TLS 1.3 ticket is single-use for clients such as curl and wrk, so each resumed
    connection must carry a new one (OpenSSL's own behaviour); otherwise every other connection
    of such a client is a full handshake. A chain of resumptions, each from the ticket the last
    one received, keeps resuming."""
    lbd, _ = tls_lbd(stack, pki)
    req = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"
    sess = tmp_path / "sess-0.pem"
    first = s_client(lbd.port, "-tls1_3", "-ign_eof", "-sess_out", str(sess), input=req, servername="a.example.test")
    assert "hello from tlsb" in first.stdout
    for i in range(1, 4):
        nxt = tmp_path / f"sess-{i}.pem"
        out = s_client(lbd.port, "-tls1_3", "-ign_eof", "-sess_in", str(sess), "-sess_out", str(nxt),
                       input=req, servername="a.example.test").stdout
        assert "Reused," in out and "hello from tlsb" in out, out[-2000:]
        assert out.count("Post-Handshake New Session Ticket arrived") == 1, out[-2000:]
        assert nxt.read_bytes() != sess.read_bytes()
        sess = nxt


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_ticket_keys_rotate_every_lifetime(stack, pki, tmp_path, version):
    """Session-ticket keys are made new every tls.ticket_key_lifetime, and the key a rotation
    replaces still opens tickets until the next one: a ticket resumes after one rotation (and is
    renewed) and falls back to a full handshake after two; rotations are counted."""
    d, made = pki
    b = stack.backend("tlsb")
    port, aport = h.free_port(), h.free_port()
    listener = h.listener("secure", port, "web")
    listener["tls"] = {"certificates": [{"cert": str(made["a"][0]), "key": str(made["a"][1])}],
                       "ticket_key_lifetime": "3s"}
    lbd = stack.lbd({"web": h.pool([b.address])}, [listener], admin={"listen": f"127.0.0.1:{aport}"})
    sess = tmp_path / "sess.pem"
    req = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"

    def rotations():
        text = h.get(aport, "/metrics", host="127.0.0.1").body.decode()
        m = re.search(r'lbd_tls_ticket_key_rotations_total\{listener="secure"\} (\d+)', text)
        return int(m.group(1)) if m else None
    def wait_rotations(n):
        deadline = time.monotonic() + 8
        while rotations() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rotations() == n

    def resume():
        return s_client(port, version, "-ign_eof", "-sess_in", str(sess), input=req, servername="a.example.test").stdout

    assert rotations() == 0
    first = s_client(port, version, "-ign_eof", "-sess_out", str(sess), input=req, servername="a.example.test")
    assert "hello from tlsb" in first.stdout
    assert "Reused," in resume()
    wait_rotations(1)
    out = resume()
    assert "Reused," in out and "hello from tlsb" in out, out[-1500:]
    wait_rotations(2)
    out = resume()
    assert "New," in out and "hello from tlsb" in out, out[-1500:]
    assert "tls session-ticket keys rotated" in lbd.stderr()


def test_tls13_ticket_follows_a_finished_that_came_alone(stack, pki):
    """A TLS 1.3 client that writes its Finished and its request separately, with Nagle on (ab,
    many libraries), holds the request until its Finished is acknowledged. lbd answers a
    Finished that came without a request at once (the session ticket, which carries the ACK)
    instead of holding the ticket for the response, which would leave the request to wait for
    the kernel's 40 ms delayed ACK."""
    import select
    d, _ = pki
    lbd, _ = tls_lbd(stack, pki)
    ctx = _context(d / "ca.pem")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", lbd.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.example.test") as s:
            assert s.version() == "TLSv1.3"
            # Nothing sent after the handshake: lbd must still send something (the ticket).
            readable, _, _ = select.select([s], [], [], 3)
            assert readable, "no session ticket after a Finished that came without a request"
            assert b"hello from tlsb" in _request(s)


def test_plain_http_on_tls_port_gets_400_and_close(stack, pki):
    lbd, _ = tls_lbd(stack, pki)
    with socket.create_connection(("127.0.0.1", lbd.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in data
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert length == len(body) and body.startswith(b"This port speaks TLS")


def _context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _request(tls_sock) -> bytes:
    tls_sock.sendall(b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
    data = b""
    while b"hello from" not in data:
        chunk = tls_sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def _read_to_close(tls_sock) -> tuple[bytes, str]:
    """Reads until the connection ends: ("close_notify" | "ragged eof", bytes read)."""
    data = b""
    while True:
        try:
            chunk = tls_sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            return data, "ragged eof"
        if not chunk:
            return data, "close_notify"
        data += chunk


def test_clean_close_sends_close_notify_and_an_abort_does_not(stack, pki):
    """The last response of a Connection: close exchange ends with close_notify; a response cut
    short by its backend ends without it, so a TLS client can tell the body is truncated."""
    d, made = pki

    def truncating(sock):
        h.read_request_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 100)
        time.sleep(0.2)
        sock.close()
    cut = stack.server(truncating, "cut")
    good = stack.backend("tlsb")
    ports = [h.free_port(), h.free_port()]
    listeners = []
    for name, port, pool in (("whole", ports[0], "web"), ("cut", ports[1], "cut")):
        listener = h.listener(name, port, pool)
        listener["tls"] = {"certificates": [{"cert": str(made["a"][0]), "key": str(made["a"][1])}]}
        listeners.append(listener)
    stack.lbd({"web": h.pool([good.address]), "cut": h.pool([cut.address])}, listeners)
    for port, want in ((ports[0], "close_notify"), (ports[1], "ragged eof")):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with _context(d / "ca.pem").wrap_socket(raw, server_hostname="a.example.test",
                                                suppress_ragged_eofs=False) as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n")
            data, end = _read_to_close(t)
        assert end == want, (port, data[:200])
        assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
        if want == "close_notify":
            assert data.endswith(b"hello from tlsb\n"), data[-200:]
        else:
            assert data.endswith(b"y" * 100), data[-200:]


def test_reload_switches_certificate_and_open_connections_keep_working(stack, pki, tmp_path):
    d, made = pki
    # Copies, so this test can replace them.
    cert, key = tmp_path / "a.pem", tmp_path / "a.key"
    cert.write_bytes(made["a"][0].read_bytes())
    key.write_bytes(made["a"][1].read_bytes())
    b = stack.backend("tlsb")
    port, aport = h.free_port(), h.free_port()
    listener = h.listener("secure", port, "web")
    listener["tls"] = {"certificates": [{"cert": str(cert), "key": str(key)}]}
    token = "tls-test-token-0123456789abcdef"
    (tmp_path / "admin.token").write_text(token + "\n")
    lbd = stack.lbd({"web": h.pool([b.address])}, [listener],
                    admin={"listen": f"127.0.0.1:{aport}", "token_file": str(tmp_path / "admin.token")})
    ctx = _context(d / "ca.pem")
    old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="a.example.test")
    first_serial = old.getpeercert()["serialNumber"]
    assert b"200 OK" in _request(old)
    # A new certificate for the same name, by SIGHUP.
    new_cert, new_key = make_cert(tmp_path, "a", NAMES["a"], d, tag="-new")
    cert.write_bytes(new_cert.read_bytes())
    key.write_bytes(new_key.read_bytes())
    lbd.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "tls certificates reloaded" not in lbd.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="a.example.test") as s:
        second_serial = s.getpeercert()["serialNumber"]
        assert b"200 OK" in _request(s)
    assert second_serial != first_serial
    assert b"200 OK" in _request(old)  # the connection opened before the reload still works
    # A broken certificate file: the reload is refused and the current certificate stays.
    cert.write_text("not a certificate\n")
    lbd.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    # The summary line and the line per problem are written one after the other: wait for both.
    while not ("reload rejected" in lbd.stderr() and "listeners[0].tls.certificates[0].cert" in lbd.stderr()) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "listeners[0].tls.certificates[0].cert" in lbd.stderr(), lbd.stderr()[-3000:]
    r = subprocess.run(["curl", "-sS", "-X", "POST", "-H", f"Authorization: Bearer {token}", "-w", "\n%{http_code}",
                        f"http://127.0.0.1:{aport}/v1/tls/reload"], capture_output=True, text=True, timeout=10)
    assert r.stdout.endswith("409") and "old certificates kept" in r.stdout, r.stdout
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="a.example.test") as s:
        assert s.getpeercert()["serialNumber"] == second_serial
    # Through the admin API, once the file is good again.
    third_cert, third_key = make_cert(tmp_path, "a", NAMES["a"], d, tag="-third")
    cert.write_bytes(third_cert.read_bytes())
    key.write_bytes(third_key.read_bytes())
    r = subprocess.run(["curl", "-sS", "-X", "POST", "-H", f"Authorization: Bearer {token}", "-w", "\n%{http_code}",
                        f"http://127.0.0.1:{aport}/v1/tls/reload"], capture_output=True, text=True, timeout=10)
    assert r.stdout.endswith("200"), r.stdout
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="a.example.test") as s:
        assert s.getpeercert()["serialNumber"] not in (first_serial, second_serial)
    assert b"200 OK" in _request(old)
    old.close()
    metrics = h.get(aport, "/metrics", host="127.0.0.1").body.decode()
    assert re.search(r'lbd_tls_handshakes_total\{listener="secure"\} [2-9]', metrics), [
        line for line in metrics.splitlines() if "lbd_tls_handshakes_total{" in line or "reloads_total{" in line]
    assert 'lbd_tls_reloads_total{listener="secure",result="rejected"} 1' in metrics.replace(", ", ",")


def test_handshake_failures_are_counted(stack, pki, tmp_path):
    d, made = pki
    b = stack.backend("tlsb")
    port, aport = h.free_port(), h.free_port()
    listener = h.listener("secure", port, "web")
    listener["tls"] = {"certificates": [{"cert": str(made["a"][0]), "key": str(made["a"][1])}]}
    lbd = stack.lbd({"web": h.pool([b.address])}, [listener], admin={"listen": f"127.0.0.1:{aport}"})
    s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)
    time.sleep(0.2)
    metrics = h.get(aport, "/metrics", host="127.0.0.1").body.decode().replace(", ", ",")
    assert 'lbd_tls_handshake_failures_total{listener="secure",reason="protocol_version"} 1' in metrics, metrics
    assert 'lbd_tls_handshake_failures_total{listener="secure",reason="plain_http"} 1' in metrics
    assert lbd.alive()


def test_bad_certificate_config_is_refused_by_path(stack, pki, tmp_path):
    d, made = pki
    cfg = h.make_config({"web": h.pool(["127.0.0.1:9"])}, [
        dict(h.listener("a", 8443, "web"), tls={"certificates": [
            {"cert": str(tmp_path / "missing.pem"), "key": str(made["a"][1])},
            {"cert": str(made["a"][0]), "key": str(made["b"][1])},
        ]}),
        dict(h.listener("b", 8444, "web", mode="tcp"), tls={"certificates": []}),
    ])
    path = tmp_path / "bad.yaml"
    path.write_text(h.to_yaml(cfg))
    r = h.run_lbd_cmd(["check", "--config", str(path)])
    assert r.returncode == 1
    out = r.stderr
    assert "listeners[1].tls.certificates: at least one certificate is required" in out, out
    assert "listeners[1].tls: TLS termination needs mode http" in out
    # File problems are checked once the file's shape is valid.
    cfg["listeners"] = cfg["listeners"][:1]
    path.write_text(h.to_yaml(cfg))
    out = h.run_lbd_cmd(["check", "--config", str(path)]).stderr
    assert "listeners[0].tls.certificates[0].cert: cannot use" in out and "missing.pem" in out, out
    assert "listeners[0].tls.certificates[1].key:" in out and "does not match" in out, out


def test_large_bodies_both_ways_over_tls(stack, pki, tmp_path):
    """Streaming with back-pressure through the TLS layer: 20 MB down and 8 MB up, bit-exact."""
    import hashlib

    from backend import pattern_sha256

    d, _ = pki
    lbd, _ = tls_lbd(stack, pki)
    base = ["curl", "-sS", "--http1.1", "--cacert", str(d / "ca.pem"), "--resolve", f"a.example.test:{lbd.port}:127.0.0.1"]
    n = 20_000_000
    r = subprocess.run(base + [f"https://a.example.test:{lbd.port}/size/{n}"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == n and hashlib.sha256(r.stdout).hexdigest() == pattern_sha256(n)
    blob = tmp_path / "up.bin"
    data = bytes(range(256)) * 32_768
    blob.write_bytes(data)
    r = subprocess.run(base + ["--data-binary", f"@{blob}", f"https://a.example.test:{lbd.port}/sha256"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == hashlib.sha256(data).hexdigest()


# -- TLS to backends ----------------------------------------------------------------------------


class TLSBackend:
    """An HTTPS backend on 127.0.0.1: GET / answers "hello from NAME", /health "ok"."""

    def __init__(self, name: str, cert: Path, key: Path):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = b"ok\n" if self.path == "/health" else f"hello from {name}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Backend", name)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_backends(pki, tmp_path):
    d, made = pki
    # A certificate that no configured CA signed.
    selfsigned_key, selfsigned = tmp_path / "self.key", tmp_path / "self.pem"
    r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                selfsigned_key, "-out", selfsigned, "-subj", "/CN=a.example.test", "-addext",
                "subjectAltName=DNS:a.example.test", "-days", "2")
    assert r.returncode == 0, r.stderr
    good = TLSBackend("trusted", *made["a"])
    bad = TLSBackend("untrusted", selfsigned, selfsigned_key)
    yield good, bad
    good.stop()
    bad.stop()


def test_tls_to_backends_verified_and_refused(stack, pki, tls_backends):
    d, _ = pki
    good, bad = tls_backends
    aport = h.free_port()
    web = h.pool([good.address, bad.address], retries=2)
    web["groups"]["main"]["tls"] = {"ca_file": str(d / "ca.pem"), "server_name": "a.example.test"}
    lbd = stack.lbd({"web": web}, admin={"listen": f"127.0.0.1:{aport}"})
    seen = [h.get(lbd.port, "/") for _ in range(12)]
    # Every request is answered by the backend whose certificate verifies; the other is refused
    # before the request reaches it, and the request goes to the next backend.
    assert all(r.status == 200 and r.header("X-Backend") == "trusted" for r in seen), [(r.status, r.body) for r in seen]
    metrics = h.get(aport, "/metrics", host="127.0.0.1").body.decode()
    assert re.search(r'lbd_backend_tls_failures_total\{reason="verify"\} [1-9]', metrics), metrics
    assert "backend TLS refused" in lbd.stderr() and "certificate not trusted" in lbd.stderr()


def test_tls_to_backends_name_check_and_health(stack, pki, tls_backends):
    d, _ = pki
    good, _ = tls_backends
    aport = h.free_port()
    # The trusted backend's certificate is for a.example.test: expecting b.example.test fails the name check.
    web = h.pool([good.address], retries=0, health={"http": {"path": "/health", "expect": 200}, "interval": "200ms",
                                                     "timeout": "150ms", "rise": 1, "fall": 1})
    web["groups"]["main"]["tls"] = {"ca_file": str(d / "ca.pem"), "server_name": "b.example.test"}
    lbd = stack.lbd({"web": web}, admin={"listen": f"127.0.0.1:{aport}"})
    time.sleep(1.0)
    pools = json.loads(h.get(aport, "/v1/pools/web", host="127.0.0.1").body)
    backend = pools["groups"][0]["backends"][0]
    assert backend["health"] == "down", backend  # health checks over TLS fail the name check
    r = h.get(lbd.port, "/")
    assert r.status in (502, 503)
    # With the right name the same backend is up and serves.
    web["groups"]["main"]["tls"]["server_name"] = "a.example.test"
    lbd2 = stack.lbd({"web": web}, admin={"listen": f"127.0.0.1:{h.free_port()}"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and h.get(lbd2.port, "/").status != 200:
        time.sleep(0.1)
    assert h.get(lbd2.port, "/").header("X-Backend") == "trusted"


def test_backend_tls_config_problems_by_path(tmp_path):
    cfg = h.make_config({"web": h.pool(["127.0.0.1:9"])}, [h.listener("p", 8080, "web")])
    cfg["pools"]["web"]["groups"]["main"]["tls"] = {"ca_file": str(tmp_path / "nope.pem"), "cert": "c.pem"}
    path = tmp_path / "c.yaml"
    path.write_text(h.to_yaml(cfg))
    out = h.run_lbd_cmd(["check", "--config", str(path)]).stderr
    assert "pools.web.groups.main.tls.key: a client certificate needs both cert and key" in out, out
    del cfg["pools"]["web"]["groups"]["main"]["tls"]["cert"]
    path.write_text(h.to_yaml(cfg))
    out = h.run_lbd_cmd(["check", "--config", str(path)]).stderr
    assert "pools.web.groups.main.tls.ca_file: cannot use" in out and "nope.pem" in out, out


def test_handshake_deadline(stack, pki):
    """A client that connects and stalls mid-handshake is closed at timeouts.client_head, counted."""
    d, made = pki
    b = stack.backend("tlsb")
    port, aport = h.free_port(), h.free_port()
    listener = h.listener("secure", port, "web")
    listener["tls"] = {"certificates": [{"cert": str(made["a"][0]), "key": str(made["a"][1])}]}
    stack.lbd({"web": h.pool([b.address])}, [listener], admin={"listen": f"127.0.0.1:{aport}"},
              timeouts={"client_head": "500ms"})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x40")  # a handshake record header, then nothing
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 2.0
    metrics = h.get(aport, "/metrics", host="127.0.0.1").body.decode().replace(", ", ",")
    assert 'lbd_tls_handshake_failures_total{listener="secure",reason="timeout"} 1' in metrics

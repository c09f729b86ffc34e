"""The status page at / of the admin endpoint, rendered by a real headless Chromium: it shows the
pools, groups with shares, and backends with their three states and request counts.

The rendered DOM (`--dump-dom`) is parsed into a small element tree, so assertions look at what the
page built (cells of one backend's row, the banner's text) and never at the page's own script text."""

from __future__ import annotations

import os
import shutil
import signal
import json
import subprocess
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import lbdharness as h
from test_admin_writes import TOKEN, admin_stack, api, two_groups
from test_health import wait_until

CHROMIUM_TIMEOUT = 60


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(profile, args, timeout=CHROMIUM_TIMEOUT) -> subprocess.CompletedProcess:
    """Chromium headless in its own process group (own profile dir), killed by PID on timeout."""
    cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"chromium did not finish in {timeout}s: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# ---------------------------------------------------------------------------------------------
# a minimal DOM of the dumped page

VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr", "area", "base", "embed", "track"}


class Element:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def elements(self):
        for c in self.children:
            if isinstance(c, Element):
                yield c
                yield from c.elements()

    def find_all(self, tag=None, **attrs):
        return [e for e in self.elements() if (tag is None or e.tag == tag)
                and all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag or '*'} {attrs}>, found {len(found)}"
        return found[0]


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.root = self.current = Element("#document", {})

    def handle_starttag(self, tag, attrs):
        e = Element(tag, attrs, self.current)
        self.current.children.append(e)
        if tag not in VOID:
            self.current = e

    def handle_endtag(self, tag):
        e = self.current
        while e is not self.root and e.tag != tag:
            e = e.parent
        if e is not self.root:
            self.current = e.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Element:
    b = TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


def backend_cells(table: Element, address: str) -> dict[str, str]:
    """Column header -> cell text of the row for `address` in one group's table."""
    headers = [th.text() for th in table.find("thead").find_all("th")]
    row = table.find("tr", data_backend=address)
    return dict(zip(headers, (td.text() for td in row.find_all("td"))))


# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (CI installs Debian's chromium)")
def test_status_page_renders_pools_groups_and_backends_in_a_real_browser(stack, tmp_path):
    stable = [stack.backend("s0"), stack.backend("s1")]
    canary = [stack.backend("c0")]
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 90, 10)}, tmp_path)

    def backends():
        return [b for g in api(lbd.admin_port, "GET", "/v1/pools", token=None)[1]["pools"][0]["groups"]
                for b in g["backends"]]

    wait_until(lambda: len(backends()) == 3 and all(b["in_rotation"] for b in backends()), 10,
               what="all three backends in rotation")
    for _ in range(20):
        assert h.get(lbd.port, "/").status == 200
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{stable[1].address}", {"state": "drain"},
               token=TOKEN)[0] == 200
    served = {b["address"]: b for b in backends()}

    # 5 s of virtual time: the first fetch plus two 2 s refreshes, so req/s has two samples.
    url = f"http://127.0.0.1:{lbd.admin_port}/"
    run = run_chromium(tmp_path / "profile-dom", ["--virtual-time-budget=5000", "--dump-dom", url])
    (tmp_path / "status.html").write_text(run.stdout)
    dom = parse(run.stdout)
    assert dom.find_all("section", data_pool="web"), run.stdout[:3000]

    banner = dom.find(id="error")
    assert banner.text() == "" and "block" not in banner.attrs.get("style", ""), banner.text()
    assert dom.find(id="updated").text() not in ("", "never"), "the page refreshed from /v1/pools"

    pool = dom.find("section", data_pool="web")
    assert "web" in pool.find("h2").text()
    groups = {g.attrs["data-group"]: g for g in pool.find_all("div", class_="group")}
    assert set(groups) == {"stable", "canary"}
    assert "90%" in groups["stable"].find("h3").text() and "10%" in groups["canary"].find("h3").text()
    assert "static" in groups["stable"].find("h3").text()

    # admin, state, in rotation, "effective / configured" weight (one number when they agree)
    expected = {stable[0].address: ("ready", "up", "yes", "1"), stable[1].address: ("drain", "drain", "no", "0 / 1"),
                canary[0].address: ("ready", "up", "yes", "1")}
    for group, members in (("stable", stable), ("canary", canary)):
        table = groups[group].find("table")
        for b in members:
            cells = backend_cells(table, b.address)
            admin, state, rotation, weight = expected[b.address]
            assert (cells["discovery"], cells["health"], cells["admin"], cells["state"], cells["in rotation"],
                    cells["weight"]) == ("present", "up", admin, state, rotation, weight), (b.address, cells)
            # req/s comes from two samples; nothing flowed between refreshes, so 0.0 (never "–" here).
            assert cells["req/s"] == "0.0", cells
            requests = served[b.address].get("requests")
            assert cells["requests"] == ("–" if requests is None else str(requests)), cells
    if all("requests" in b for b in served.values()):
        assert sum(b["requests"] for b in served.values()) >= 20

    # Each badge carries its colour class: good states green, drain amber.
    badges = {s.text(): s.attrs["class"] for s in pool.find_all("span") if "badge" in s.attrs.get("class", "")}
    assert "b-ok" in badges["up"] and "b-ok" in badges["present"] and "b-ok" in badges["ready"], badges
    assert "b-warn" in badges["drain"], badges

    # A screenshot for people (kept in the test's tmp dir; STATUS_SCREENSHOT copies it out).
    shot = tmp_path / "status.png"
    run_chromium(tmp_path / "profile-shot", ["--virtual-time-budget=5000", "--window-size=1280,900",
                                             "--hide-scrollbars", f"--screenshot={shot}", url])
    assert shot.exists() and shot.stat().st_size > 5000
    if os.environ.get("STATUS_SCREENSHOT"):
        shutil.copy(shot, os.environ["STATUS_SCREENSHOT"])


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (CI installs Debian's chromium)")
def test_status_page_shows_a_banner_when_the_api_is_gone(stack, tmp_path):
    """The page keeps its last data and says so when /v1/pools stops answering."""
    stable, canary = [stack.backend("s0")], [stack.backend("c0")]
    lbd = admin_stack(stack, {"web": two_groups(stable, canary)}, tmp_path)
    page = tmp_path / "page.html"
    page.write_text(api(lbd.admin_port, "GET", "/", token=None)[1])
    lbd.stop()
    # Opened from a file, the page's relative fetch of /v1/pools fails: the banner must show.
    run = run_chromium(tmp_path / "profile", ["--virtual-time-budget=3000", "--dump-dom", page.as_uri()])
    dom = parse(run.stdout)
    banner = dom.find(id="error")
    assert banner.text().startswith("cannot refresh"), run.stdout[-2000:]
    assert "block" in banner.attrs.get("style", "")
    assert dom.find(id="updated").text() == "never"


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (CI installs Debian's chromium)")
def test_status_page_shows_srv_ids_absent_backends_and_stale_discovery(stack, tmp_path):
    from test_discovery import instances, resolver, srv_pool, tcp_health

    backends = [stack.backend(f"a{n}") for n in range(3)]
    dns = stack.consul_dns()
    dns.set_service("web", instances(backends))
    admin_port = h.free_port()
    stack.lbd({"web": srv_pool(health=tcp_health(), slots=4)}, resolvers=resolver(dns),
              admin={"listen": f"127.0.0.1:{admin_port}"})

    def served():
        return api(admin_port, "GET", "/v1/pools", token=None)[1]["pools"][0]["groups"][0]["backends"]

    wait_until(lambda: len(served()) == 3 and all(b["in_rotation"] for b in served()), 10, what="3 SRV backends up")
    dns.set_service("web", instances(backends[:2]))
    wait_until(lambda: any(b["discovery"] == "absent" for b in served()), 5, what="one backend absent")
    dns.fault = "silence"
    wait_until(lambda: all(b["discovery"] in ("stale", "absent") for b in served()), 5, what="discovery stale")
    rows = served()

    url = f"http://127.0.0.1:{admin_port}/"
    run = run_chromium(tmp_path / "profile", ["--virtual-time-budget=3000", "--dump-dom", url])
    (tmp_path / "status.html").write_text(run.stdout)
    group = parse(run.stdout).find("section", data_pool="web").find("div", data_group="main")
    title = group.find("h3").text()
    assert "source _web._tcp.service.consul" in title and "4 slots" in title, title
    assert "discovery stale" in title, title
    table = group.find("table")
    for b in rows:
        hook = b.get("address") or b["id"]
        row = table.find("tr", data_backend=hook)
        assert row.attrs["data-id"] == b["id"]
        cells = backend_cells(table, hook)
        assert cells["discovery"] == b["discovery"] and cells["in rotation"] == ("yes" if b["in_rotation"] else "no")
        # The id is the SRV target; the address it resolved to is shown under it.
        assert cells["backend"] == b["id"] + (b["address"] if "address" in b and b["address"] != b["id"] else "")
    assert {backend_cells(table, b.get("address") or b["id"])["discovery"] for b in rows} == {"stale", "absent"}

    shot = tmp_path / "status-srv.png"
    run_chromium(tmp_path / "profile-shot", ["--virtual-time-budget=3000", "--window-size=1280,900",
                                             "--hide-scrollbars", f"--screenshot={shot}", url])
    assert shot.exists()
    if os.environ.get("STATUS_SCREENSHOT"):
        shutil.copy(shot, os.environ["STATUS_SCREENSHOT"].replace(".png", "-srv.png"))


class FakeAPI:
    """Serves lbd's own status page at / and a scripted /v1/pools: `docs(n)` gives the n-th answer
    (n from 0), as a dict (200) or an int (that status). Under Chromium's virtual clock the page's
    refreshes are exactly 2 s apart, so rates computed from scripted counters are exact."""

    def __init__(self, page: str, docs):
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/":
                    status, ctype, body = 200, "text/html; charset=utf-8", page.encode()
                elif self.path == "/v1/pools":
                    doc = docs(fake.calls)
                    fake.calls += 1
                    status, ctype = (doc, "application/json") if isinstance(doc, int) else (200, "application/json")
                    body = json.dumps({"error": "scripted"} if isinstance(doc, int) else doc).encode()
                else:
                    status, ctype, body = 404, "text/plain", b"not found"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def status_page(stack, tmp_path) -> str:
    """The HTML lbd serves at /."""
    lbd = admin_stack(stack, {"web": two_groups([stack.backend("s0")], [stack.backend("c0")])}, tmp_path)
    status, page, headers = api(lbd.admin_port, "GET", "/", token=None)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    return page


def backend_doc(address, **fields) -> dict:
    return {"id": address, "address": address, **fields}


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (CI installs Debian's chromium)")
def test_status_page_rates_resets_and_missing_fields(status_page, tmp_path):
    def docs(n):
        full = dict(discovery="present", health="up", admin="ready", state="up", in_rotation=True, weight=2,
                    effective_weight=2, in_flight=3, responses={"5xx": 1}, errors=0)
        return {"pools": [
            {"name": "web", "groups": [{"name": "main", "share": 100, "configured_share": 100, "source": "static",
                                        "capped": False, "backends": [
                backend_doc("10.0.0.1:80", requests=100 + 10 * n, **full),   # +10 per 2 s: 5.0/s
                backend_doc("10.0.0.2:80", requests=1000 - n, **full)]}]},  # counter went back: "–"
            # As an older server answers: no requests, admin, in_flight, weights, responses, errors.
            {"name": "old", "groups": [{"name": "main", "share": 100, "source": "static", "backends": [
                backend_doc("10.0.1.1:80", discovery="present", health="up", state="up", in_rotation=True)]}]}]}

    with FakeAPI(status_page, docs) as fake:
        run = run_chromium(tmp_path / "profile", ["--virtual-time-budget=5000", "--dump-dom", fake.url])
    assert fake.calls >= 2, "the page refreshed at least once after loading"
    dom = parse(run.stdout)
    web = dom.find("section", data_pool="web").find("table")
    growing, reset = backend_cells(web, "10.0.0.1:80"), backend_cells(web, "10.0.0.2:80")
    assert growing["req/s"] == "5.0" and growing["requests"] == str(100 + 10 * (fake.calls - 1)), growing
    assert (growing["weight"], growing["in flight"], growing["5xx"], growing["errors"]) == ("2", "3", "1", "0")
    assert reset["req/s"] == "–", reset
    old = backend_cells(dom.find("section", data_pool="old").find("table"), "10.0.1.1:80")
    assert old["state"] == "up" and old["in rotation"] == "yes"
    for column in ("admin", "weight", "in flight", "req/s", "requests", "5xx", "errors"):
        assert old[column] == "–", (column, old)
    assert "configured" not in dom.find("section", data_pool="old").find("h3").text()
    assert dom.find(id="summary").text() == "2 pools, 3 of 3 backends in rotation"


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (CI installs Debian's chromium)")
def test_status_page_keeps_the_last_data_under_a_banner_when_a_refresh_fails(status_page, tmp_path):
    def docs(n):
        if n > 0:
            return 500
        return {"pools": [{"name": "web", "groups": [{"name": "main", "share": 100, "source": "static", "backends": [
            backend_doc("10.0.0.1:80", discovery="present", health="up", admin="ready", state="up",
                        in_rotation=True)]}]}]}

    with FakeAPI(status_page, docs) as fake:
        run = run_chromium(tmp_path / "profile", ["--virtual-time-budget=3000", "--dump-dom", fake.url])
    assert fake.calls >= 2
    dom = parse(run.stdout)
    banner, updated = dom.find(id="error"), dom.find(id="updated").text()
    assert "block" in banner.attrs.get("style", "")
    assert banner.text() == f"cannot refresh: GET /v1/pools answered 500; showing data from {updated}", banner.text()
    assert backend_cells(dom.find("section", data_pool="web").find("table"), "10.0.0.1:80")["state"] == "up"

"""schemathesis (PyPI) against the live admin endpoint with the OpenAPI document in
docs/admin-openapi.yaml: no 5xx, no response outside the schema, no undocumented status, for
random and boundary input; once with random path parameters and once pinned to the real pool,
groups and backends, so the writes reach the code that applies them. Also: writes without or
with a wrong token get 401 with the documented Error body and change nothing, and an SRV group
with an absent backend is checked against the document's Pool schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lbdharness as h
from test_admin_writes import TOKEN, admin_stack, api, backends, shares, two_groups
from test_discovery import instances, resolver, srv_pool
from test_health import wait_until

SPEC = Path(__file__).resolve().parents[2] / "docs" / "admin-openapi.yaml"
# Each schemathesis run is bounded: a run takes about 12 s here; together well under 90 s.
RUN_TIMEOUT = 40


def schema_errors(component: str, instance) -> list[str]:
    """Where `instance` departs from components/schemas/`component` of the document (OpenAPI
    3.0 schemas are JSON Schema draft 4 for what the document uses). jsonschema-rs comes with
    schemathesis 4; the Python jsonschema package is the fallback."""
    root = dict(yaml.safe_load(SPEC.read_text()), **{"$ref": f"#/components/schemas/{component}"})
    try:
        import jsonschema_rs
        return [f"{e.instance_path}: {e.message}" for e in jsonschema_rs.Draft4Validator(root).iter_errors(instance)]
    except ImportError:
        import jsonschema
        return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(root).iter_errors(instance)]


def schemathesis_cmd() -> list[str]:
    # The interpreter running pytest, where `import schemathesis` works: its console script may
    # not be on PATH (pip --user), and `st` may be another program.
    return [sys.executable, "-m", "schemathesis.cli"]


def run_schemathesis(spec: Path, port: int, tmp_path: Path, examples: int) -> subprocess.CompletedProcess:
    cmd = schemathesis_cmd() + [
        "run", str(spec), "--url", f"http://127.0.0.1:{port}", "-H", f"Authorization: Bearer {TOKEN}",
        # Every check but positive_data_acceptance: a schema cannot say everything the server
        # checks (an address's octets and port in range, a DNS name, an address already in
        # another group, the only group's share), and those answers are 400/409 by design.
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(examples), "--seed", "7", "--request-timeout", "5",
        "--no-color",
    ]
    env = dict(os.environ, SCHEMATHESIS_HOOKS="", HYPOTHESIS_STORAGE_DIRECTORY=str(tmp_path / "hyp"))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path, env=env)


def pinned_spec(tmp_path: Path, pool: str, groups: list[str], addresses: list[str]) -> Path:
    doc = yaml.safe_load(SPEC.read_text())
    doc["components"]["parameters"]["pool"]["schema"] = {"type": "string", "enum": [pool]}
    for path, item in doc["paths"].items():
        for p in item.get("parameters", []):
            if p.get("name") == "group":
                p["schema"] = {"type": "string", "enum": groups}
            if p.get("name") == "address":
                p["schema"] = {"type": "string", "enum": addresses}
    for op in ("/v1/pools/{pool}/promote", "/v1/pools/{pool}/revert"):
        body = doc["paths"][op]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["properties"]["group"] = {"type": "string", "enum": groups}
    out = tmp_path / "pinned-openapi.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def test_schemathesis_finds_no_5xx_and_no_schema_violation(stack, tmp_path):
    import schemathesis  # noqa: F401 - CI installs it; a missing package fails this test
    stable = [stack.backend("s0"), stack.backend("s1")]
    canary = [stack.backend("c0")]
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 95, 5)}, tmp_path)
    generic = run_schemathesis(SPEC, lbd.admin_port, tmp_path, 40)
    assert generic.returncode == 0, generic.stdout[-6000:] + generic.stderr[-2000:]
    spec = pinned_spec(tmp_path, "web", ["stable", "canary"], [b.address for b in stable + canary])
    pinned = run_schemathesis(spec, lbd.admin_port, tmp_path, 60)
    assert pinned.returncode == 0, pinned.stdout[-6000:] + pinned.stderr[-2000:]
    assert "passed" in pinned.stdout
    print("\n" + "\n".join(line for line in pinned.stdout.splitlines() if "generated" in line or "passed" in line))
    # lbd is alive and still answers for its pool after all of it.
    assert lbd.alive()
    assert api(lbd.admin_port, "GET", "/v1/pools/web", token=None)[0] == 200


def test_a_write_without_the_token_gets_401_and_changes_nothing(stack, tmp_path):
    a, b = stack.backend("a"), stack.backend("b")
    lbd = admin_stack(stack, {"web": two_groups([a], [b], 95, 5)}, tmp_path)
    before = (backends(lbd), shares(lbd))
    writes = [
        ("PUT", f"/v1/pools/web/backends/{a.address}", {"weight": 9}),
        ("PUT", "/v1/pools/web/groups/canary", {"share": 50}),
        ("PUT", "/v1/pools/web/groups/canary", {"static": ["127.0.0.1:1"]}),
        ("POST", "/v1/pools/web/promote", {"group": "canary"}),
        ("POST", "/v1/pools/web/revert", {"group": "canary"}),
    ]
    for method, path, body in writes:
        for token in (None, "not-the-token-at-all"):
            status, doc, headers = api(lbd.admin_port, method, path, body, token=token)
            assert status == 401 and headers.get("WWW-Authenticate") == "Bearer", (method, path, status, doc)
            assert schema_errors("Error", doc) == [], doc
    assert (backends(lbd), shares(lbd)) == before
    assert not (tmp_path / "state.json").exists() or "overrides" not in json.loads((tmp_path / "state.json").read_text())


def test_an_srv_group_with_an_absent_backend_matches_the_schema(stack, tmp_path):
    """What the static pool above never shows: a group with `discovery`, SRV ids, and a backend
    discovery reports absent (address left out, per the contract)."""
    live = [stack.backend(f"a{n}") for n in range(2)]
    dns = stack.consul_dns()
    dns.set_service("web", instances(live))
    lbd = admin_stack(stack, {"web": srv_pool(slots=4)}, tmp_path, resolvers=resolver(dns))

    def pool():
        status, doc, _ = api(lbd.admin_port, "GET", "/v1/pools", token=None)
        assert status == 200, doc
        return doc["pools"][0]
    wait_until(lambda: sum(b["discovery"] == "present" for b in pool()["groups"][0]["backends"]) == 2, 5,
               what="both SRV backends present")
    dns.set_service("web", instances(live[:1]))
    wait_until(lambda: any(b["discovery"] == "absent" for b in pool()["groups"][0]["backends"]), 5,
               what="one SRV backend absent")
    doc = pool()
    assert "discovery" in doc["groups"][0] and all("address" not in b for b in doc["groups"][0]["backends"]
                                                     if b["discovery"] == "absent")
    assert schema_errors("Pool", doc) == [], json.dumps(doc, indent=1)


def raw_admin(port, data: bytes) -> h.Response:
    sock, reader = h.raw_exchange(port, data)
    try:
        return h.read_response(reader)
    finally:
        sock.close()


def test_connect_gets_405_with_allow(stack, tmp_path):
    a = stack.backend("a")
    lbd = admin_stack(stack, {"web": two_groups([a], [stack.backend("b")])}, tmp_path)
    resp = raw_admin(lbd.admin_port, b"CONNECT /v1/pools HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp.status == 405 and schema_errors("Error", resp.json()) == [], resp
    assert resp.header("Allow") == "GET, HEAD", resp


def test_a_write_with_the_token_and_an_unknown_transfer_coding_is_not_401(stack, tmp_path):
    a = stack.backend("a")
    lbd = admin_stack(stack, {"web": two_groups([a], [stack.backend("b")])}, tmp_path)
    before = backends(lbd)
    resp = raw_admin(lbd.admin_port, (
        f"PUT /v1/pools/web/backends/{a.address} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n").encode())
    assert backends(lbd) == before
    assert 400 <= resp.status < 600 and schema_errors("Error", resp.json()) == [], resp
    assert resp.status != 401 and resp.header("WWW-Authenticate") is None, resp

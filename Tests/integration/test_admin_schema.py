"""schemathesis (PyPI) against the live admin endpoint with the OpenAPI document in
docs/admin-openapi.yaml: no 5xx, no response outside the schema, no undocumented status, for
random and boundary input; once with random path parameters and once pinned to the real pool,
groups and backends, so the writes reach the code that applies them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import lbdharness as h
from test_admin_writes import TOKEN, admin_stack, api, backends, shares, two_groups

SPEC = Path(__file__).resolve().parents[2] / "docs" / "admin-openapi.yaml"


def schemathesis_cmd() -> list[str]:
    exe = shutil.which("schemathesis") or shutil.which("st")
    if exe:
        return [exe]
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
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)


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
    assert (backends(lbd), shares(lbd)) == before
    assert not (tmp_path / "state.json").exists() or "overrides" not in json.loads((tmp_path / "state.json").read_text())

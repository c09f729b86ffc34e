"""`lbd check` and `lbd version`."""

import copy
import subprocess

import pytest

import lbdharness as h

CONF_FILES = sorted((h.REPO / "conf").glob("*.yaml"))


def valid_cfg():
    return h.make_config(
        {"web": h.pool(["127.0.0.1:9001", ("127.0.0.1:9002", 2)])},
        [h.listener("public", 18080, "web")])


def run_check(tmp_path, cfg, name="c.yaml"):
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else h.to_yaml(cfg))
    r = h.run_lbd_cmd(["check", "--config", str(p)])
    return r, r.stdout + r.stderr


def test_version():
    r = h.run_lbd_cmd(["version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "lbd version printed nothing"


@pytest.mark.parametrize("path", CONF_FILES or [None], ids=[p.name for p in CONF_FILES] or ["none"])
def test_repo_configs_pass_check(path):
    if path is None:
        pytest.skip("no conf/*.yaml in the repo yet")
    r = subprocess.run([h.LBD_BIN, "check", "--config", str(path)], capture_output=True, text=True,
                       timeout=30, cwd=str(h.REPO))
    assert r.returncode == 0, f"{path}: exit {r.returncode}\n{r.stdout}{r.stderr}"


def test_generated_config_passes_check(tmp_path):
    r, out = run_check(tmp_path, valid_cfg())
    assert r.returncode == 0, out


def mutate(fn):
    cfg = copy.deepcopy(valid_cfg())
    fn(cfg)
    return cfg


def _static(cfg):
    return cfg["pools"]["web"]["groups"]["main"]["static"]


SINGLE_PROBLEMS = {
    "unknown-pool": (lambda c: c["listeners"][0].update(pool="nope"), "listeners[0].pool"),
    "weight-zero": (lambda c: _static(c).__setitem__(0, {"address": "127.0.0.1:9001", "weight": 0}),
                    "pools.web.groups.main.static[0].weight"),
    "weight-300": (lambda c: _static(c).__setitem__(1, {"address": "127.0.0.1:9002", "weight": 300}),
                   "pools.web.groups.main.static[1].weight"),
    "bad-duration": (lambda c: c["timeouts"].update(client_head="10 parsecs"), "timeouts.client_head"),
    "bad-balance": (lambda c: c["pools"]["web"].update(balance="random"), "pools.web.balance"),
    "share-150": (lambda c: c["pools"]["web"]["groups"]["main"].update(share=150), "pools.web.groups.main.share"),
    "bind-without-port": (lambda c: c["listeners"][0].update(bind="127.0.0.1"), "listeners[0].bind"),
    "bad-mode": (lambda c: c["listeners"][0].update(mode="udp"), "listeners[0].mode"),
    "bad-backend-address": (lambda c: _static(c).__setitem__(0, "not-an-address"), "pools.web.groups.main.static[0]"),
    "retries-99": (lambda c: c["pools"]["web"].update(retries=99), "pools.web.retries"),
    "workers-zero": (lambda c: c.update(workers=0), "workers"),
}


@pytest.mark.parametrize("case", list(SINGLE_PROBLEMS))
def test_single_problem_named(tmp_path, case):
    fn, path = SINGLE_PROBLEMS[case]
    r, out = run_check(tmp_path, mutate(fn))
    assert r.returncode != 0, f"{case}: lbd check accepted it:\n{out}"
    assert f"{path}:" in out, f"{case}: expected a problem at {path!r}, got:\n{out}"


def test_every_problem_named_at_once(tmp_path):
    def broken(c):
        c["listeners"][0]["pool"] = "nope"
        _static(c)[0] = {"address": "127.0.0.1:9001", "weight": 0}
        c["timeouts"]["client_head"] = "10 parsecs"
    r, out = run_check(tmp_path, mutate(broken))
    assert r.returncode != 0, out
    for path in ("listeners[0].pool", "pools.web.groups.main.static[0].weight", "timeouts.client_head"):
        assert f"{path}:" in out, f"missing {path!r} in:\n{out}"


def test_not_yaml_fails(tmp_path):
    r, out = run_check(tmp_path, "pools: [unclosed\n  : : :\n")
    assert r.returncode != 0, out
    assert out.strip()


def test_missing_file_fails(tmp_path):
    r = h.run_lbd_cmd(["check", "--config", str(tmp_path / "absent.yaml")])
    assert r.returncode != 0


def test_run_refuses_broken_config(tmp_path):
    cfg = mutate(lambda c: c["listeners"][0].update(pool="nope"))
    p = tmp_path / "bad.yaml"
    p.write_text(h.to_yaml(cfg))
    r = h.run_lbd_cmd(["run", "--config", str(p)], timeout=15)
    assert r.returncode != 0
    assert "listeners[0].pool" in r.stdout + r.stderr

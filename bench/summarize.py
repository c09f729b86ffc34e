#!/usr/bin/env python3
"""Formatting for bench/run: one round pair's ratios, and the final table of medians.

Input files are written by bench/run, tab-separated, one row per measurement:
  results.tsv  scenario round proxy rps p99_ms cpu_us_per_req requests errors proxy_cpu_pct other_cpu_pct
  idle.tsv     proxy conns rss_before_kb rss_after_kb fds_before fds_after held
"""

import statistics
import sys

PROXIES = ("lbd", "haproxy")
QUIET = 5.0  # a round is quiet when other work took less than this % of the proxy CPU
SCENARIO_TITLE = {"keepalive": "keep-alive", "close": "Connection: close", "tls-keepalive": "TLS keep-alive",
                  "tls-close": "TLS resumed handshake per request", "tls-full": "TLS full handshake per request (ab)"}


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(line.rstrip("\n").split("\t"))
    return rows


def results(path):
    out = []
    for scenario, rnd, proxy, rps, p99, cpu, requests, errors, used, other in load(path):
        out.append(dict(scenario=scenario, round=int(rnd), proxy=proxy, rps=float(rps), p99=float(p99),
                        cpu=float(cpu), requests=int(requests), errors=int(errors), used=float(used),
                        other=float(other)))
    return out


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


def pair(path, scenario, rnd):
    """Prints the lbd/HAProxy ratios of one round."""
    rows = {r["proxy"]: r for r in results(path) if r["scenario"] == scenario and r["round"] == int(rnd)}
    a, b = rows.get("lbd"), rows.get("haproxy")
    if not a or not b:
        return
    print(f"  {'lbd/haproxy':<9}  req/s x{ratio(a['rps'], b['rps'])}   cpu/req x{ratio(a['cpu'], b['cpu'])}"
          f"   p99 x{ratio(a['p99'], b['p99'])}")


def final(path, idle_path, header):
    rows = results(path)
    print(f"### {header}")
    print()
    print("| scenario | metric | lbd | HAProxy | lbd/HAProxy |")
    print("|---|---|--:|--:|--:|")
    for scenario in [s for s in SCENARIO_TITLE if any(r["scenario"] == s for r in rows)]:
        med = {}
        errs = {}
        for proxy in PROXIES:
            mine = [r for r in rows if r["scenario"] == scenario and r["proxy"] == proxy]
            keys = ("rps", "p99", "cpu", "used", "other")
            med[proxy] = {k: statistics.median(r[k] for r in mine) for k in keys} if mine else None
            errs[proxy] = sum(r["errors"] for r in mine)
        if not med["lbd"] or not med["haproxy"]:
            continue
        a, b = med["lbd"], med["haproxy"]
        title = SCENARIO_TITLE[scenario]
        print(f"| {title} | req/s (median) | {a['rps']:.0f} | {b['rps']:.0f} | {ratio(a['rps'], b['rps'])} |")
        print(f"| {title} | p99 ms (median) | {a['p99']:.2f} | {b['p99']:.2f} | {ratio(a['p99'], b['p99'])} |")
        print(f"| {title} | proxy CPU µs/req (median) | {a['cpu']:.1f} | {b['cpu']:.1f} | "
              f"{ratio(a['cpu'], b['cpu'])} |")
        print(f"| {title} | errors, all rounds | {errs['lbd']} | {errs['haproxy']} | |")
        print(f"| {title} | proxy CPU used by the proxy / by other work, % (median) | "
              f"{a['used']:.0f} / {a['other']:.0f} | {b['used']:.0f} / {b['other']:.0f} | |")
        # The same medians over the round pairs where neither proxy shared its CPU with other work.
        by_round = {}
        for r in rows:
            if r["scenario"] == scenario:
                by_round.setdefault(r["round"], {})[r["proxy"]] = r
        quiet = [p for p in by_round.values()
                 if all(x in p and p[x]["other"] < QUIET for x in PROXIES)]
        n = f"{len(quiet)}/{len(by_round)}"
        if quiet:
            qa = {k: statistics.median(p["lbd"][k] for p in quiet) for k in ("rps", "cpu")}
            qb = {k: statistics.median(p["haproxy"][k] for p in quiet) for k in ("rps", "cpu")}
            print(f"| {title} | req/s (median of {n} quiet pairs) | {qa['rps']:.0f} | {qb['rps']:.0f} | "
                  f"{ratio(qa['rps'], qb['rps'])} |")
            print(f"| {title} | proxy CPU µs/req (median of {n} quiet pairs) | {qa['cpu']:.1f} | {qb['cpu']:.1f} | "
                  f"{ratio(qa['cpu'], qb['cpu'])} |")
        else:
            print(f"| {title} | quiet pairs (other work < {QUIET:.0f}% for both) | none of {len(by_round)} | | |")
    if idle_path:
        idle = {}
        for proxy, conns, before, after, fds_before, fds_after, held in load(idle_path):
            idle[proxy] = dict(conns=int(conns), before=int(before), after=int(after),
                               fds=int(fds_after) - int(fds_before), held=held)
        if idle:
            n = max(v["conns"] for v in idle.values())
            per = {p: (v["after"] - v["before"]) * 1024 / v["conns"] for p, v in idle.items()}
            cells = [f"{idle[p]['before'] / 1024:.1f}" if p in idle else "-" for p in PROXIES]
            print(f"| {n} idle conns | RSS before, MiB | {cells[0]} | {cells[1]} | |")
            cells = [f"{idle[p]['after'] / 1024:.1f}" if p in idle else "-" for p in PROXIES]
            print(f"| {n} idle conns | RSS with them open, MiB | {cells[0]} | {cells[1]} | |")
            cells = [f"{per[p]:.0f}" if p in per else "-" for p in PROXIES]
            r = ratio(per["lbd"], per["haproxy"]) if "lbd" in per and "haproxy" in per else ""
            print(f"| {n} idle conns | RSS bytes per conn | {cells[0]} | {cells[1]} | {r} |")
            cells = [f"{idle[p]['fds']} / {idle[p]['held']}" if p in idle else "-" for p in PROXIES]
            print(f"| {n} idle conns | fds added / conns still open | {cells[0]} | {cells[1]} | |")


def main(argv):
    if len(argv) >= 4 and argv[0] == "pair":
        pair(argv[1], argv[2], argv[3])
    elif len(argv) >= 4 and argv[0] == "final":
        final(argv[1], argv[2], argv[3])
    else:
        print("usage: summarize.py pair RESULTS SCENARIO ROUND | final RESULTS IDLE HEADER", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

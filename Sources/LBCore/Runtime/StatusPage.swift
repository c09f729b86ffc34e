// The status page at `/` of the admin endpoint, for people: one self-contained document (no
// external resources) that reads /v1/pools every 2 s and shows pools, groups with their shares,
// sources and discovery staleness, and backends with their three separate states, weights,
// in-flight and request rates (computed in the page from the request counters of two refreshes).
//
// The DOM is built with createElement/textContent only, never from API text as HTML. Every field
// may be missing (an older server, an absent backend without an address): the page shows "–".
// Hooks for tests: `data-pool`, `data-group`, `data-backend` (address, else id) and `data-id` on
// rows, `id="updated"`, `id="summary"` and the banner `id="error"`.

enum StatusPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>lbd status</title>
        <style>
          :root { --ok: #1f7a3a; --warn: #a66300; --bad: #b3261e; --info: #2f5d9e; --muted: #6b7280; --line: #e3e6ea; }
          * { box-sizing: border-box; }
          body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #f4f5f7; }
          header { background: #1d2733; color: #fff; padding: 12px 24px; display: flex; align-items: baseline; gap: 24px; flex-wrap: wrap; }
          header h1 { font-size: 18px; margin: 0; letter-spacing: .02em; }
          header .meta { color: #c9d1da; font-size: 13px; }
          header .links { margin-left: auto; }
          header a { color: #9cc7ff; }
          main { padding: 16px 24px; max-width: 1400px; }
          .banner { display: none; background: #fde8e6; color: var(--bad); border: 1px solid #f4b6b0; padding: 8px 12px; margin-bottom: 12px; border-radius: 4px; }
          .empty { color: var(--muted); }
          section.pool { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin-bottom: 18px; padding: 8px 16px 16px; }
          section.pool h2 { font-size: 16px; margin: 8px 0 4px; display: flex; gap: 12px; align-items: baseline; }
          section.pool h2 .info { font-size: 13px; font-weight: normal; color: var(--muted); }
          .group h3 { font-size: 14px; margin: 14px 0 6px; display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
          .group h3 .info { font-weight: normal; color: var(--muted); }
          .share { font-weight: 600; }
          .flag { font-size: 12px; font-weight: 600; padding: 0 6px; border-radius: 3px; border: 1px solid; }
          .flag.bad { color: var(--bad); } .flag.warn { color: var(--warn); }
          table { border-collapse: collapse; width: 100%; table-layout: fixed; font-variant-numeric: tabular-nums; }
          th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
          th { font-weight: 600; font-size: 13px; color: #444; background: #f8f9fa; }
          tbody tr:hover { background: #f8fafc; }
          td.num, th.num { text-align: right; }
          td.name .sub { display: block; font-size: 12px; color: var(--muted); }
          .badge { display: inline-block; min-width: 44px; text-align: center; padding: 0 7px; border-radius: 9px; font-size: 12px; line-height: 18px; color: #fff; background: var(--muted); }
          .b-ok { background: var(--ok); } .b-warn { background: var(--warn); } .b-bad { background: var(--bad); }
          .b-info { background: var(--info); } .b-off { background: #fff; color: var(--muted); box-shadow: inset 0 0 0 1px #c4c9cf; }
        </style>
        </head>
        <body>
        <header>
          <h1>lbd status</h1>
          <span class="meta">updated <span id="updated">never</span></span>
          <span class="meta" id="summary"></span>
          <span class="meta links"><a href="/v1/pools">/v1/pools</a> · <a href="/metrics">/metrics</a></span>
        </header>
        <main>
          <div class="banner" id="error"></div>
          <div id="pools"></div>
        </main>
        <script>
        "use strict";
        const PERIOD = 2000;
        const COLUMNS = [  // header, width, numeric, title
          ["backend", "22%"], ["discovery", "8%"], ["health", "8%"], ["admin", "7%"], ["state", "7%"],
          ["in rotation", "8%"], ["weight", "7%", true, "effective / configured, when they differ"],
          ["in flight", "7%", true], ["req/s", "6%", true, "from the request counter of the last two refreshes"],
          ["requests", "8%", true], ["5xx", "5%", true], ["errors", "7%", true]];
        const KIND = {present: "b-ok", up: "b-ok", ready: "b-ok", yes: "b-ok",
                      stale: "b-warn", standby: "b-warn", drain: "b-warn", new: "b-warn",
                      down: "b-bad", ejected: "b-bad", maint: "b-info",
                      absent: "b-off", unknown: "b-off", no: "b-off"};
        let samples = new Map();   // "pool/group/backend" -> {requests, at} from the last refresh
        let lastGood = null;
        let busy = false;

        function text(v) { return v == null ? "–" : String(v); }

        function el(tag, attrs, ...children) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) {
            if (v == null) continue;
            if (k === "class") e.className = v; else e.setAttribute(k, v);
          }
          for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(text(c)));
          return e;
        }

        // A coloured badge per state; an unknown state is red (better loud than hidden), a missing one plain "–".
        function badge(value, title) {
          if (value == null) return "–";
          const v = String(value);
          return el("span", {class: "badge " + (KIND[v] || "b-bad"), title}, v);
        }

        // Requests per second since the previous refresh; "–" before the second sample, when the
        // server has no counter, or when the counter went back (lbd restarted).
        function rate(next, key, requests, now) {
          if (typeof requests !== "number") return "–";
          next.set(key, {requests, at: now});
          const before = samples.get(key);
          if (!before || now <= before.at || requests < before.requests) return "–";
          return ((requests - before.requests) * 1000 / (now - before.at)).toFixed(1);
        }

        function weight(b) {
          if (b.weight == null) return null;
          if (b.effective_weight != null && b.effective_weight !== b.weight) return b.effective_weight + " / " + b.weight;
          return b.weight;
        }

        function groupTitle(g) {
          const title = el("h3", {}, "group " + text(g.name), el("span", {class: "share"}, text(g.share) + "%"));
          const info = ["source " + text(g.source)];
          if (g.configured_share != null && g.configured_share !== g.share) info.push("configured " + g.configured_share + "%");
          const d = g.discovery;
          if (d) {
            info.push(text(d.slots) + " slots");
            if (d.failures) info.push(d.failures + " failed resolutions");
            if (d.overflow_total) info.push(d.overflow_total + " records without a slot");
            if (!(Number(d.stale_seconds) > 0)) info.push("discovery fresh");
          }
          title.append(el("span", {class: "info"}, info.join(" · ")));
          if (d && Number(d.stale_seconds) > 0) {
            title.append(el("span", {class: "flag warn", title: text(d.last_failure)},
                            "discovery stale " + Number(d.stale_seconds).toFixed(1) + " s"));
          }
          if (g.capped) title.append(el("span", {class: "flag bad", title: "fewer backends in rotation than the share needs"}, "capped"));
          return title;
        }

        function groupTable(pool, g, next, now, counts) {
          const cols = el("colgroup", {}, ...COLUMNS.map(c => el("col", {style: "width: " + c[1]})));
          const head = el("thead", {}, el("tr", {}, ...COLUMNS.map(c => el("th", {class: c[2] ? "num" : null, title: c[3]}, c[0]))));
          const body = el("tbody");
          for (const b of g.backends || []) {
            const name = b.address || b.id;
            counts.backends++;
            if (b.in_rotation) counts.inRotation++;
            const cell = el("td", {class: "name", title: b.id && b.address && b.id !== b.address ? b.id + " → " + b.address : name}, text(b.id || name));
            if (b.id && b.address && b.id !== b.address) cell.append(el("span", {class: "sub"}, b.address));
            const checks = b.checks ? (b.checks.enabled ? "checks: " + text(b.checks.successes) + " ok, " + text(b.checks.failures) + " failed" : "no health checks") : null;
            body.append(el("tr", {"data-backend": name, "data-id": b.id},
              cell,
              el("td", {}, badge(b.discovery)), el("td", {}, badge(b.health, checks)), el("td", {}, badge(b.admin)),
              el("td", {}, badge(b.state, b.ejections ? "ejected " + b.ejections + " times" : null)),
              el("td", {}, badge(b.in_rotation == null ? null : b.in_rotation ? "yes" : "no")),
              el("td", {class: "num"}, weight(b)), el("td", {class: "num"}, b.in_flight),
              el("td", {class: "num"}, rate(next, pool.name + "/" + g.name + "/" + name, b.requests, now)),
              el("td", {class: "num"}, b.requests),
              el("td", {class: "num"}, b.responses ? b.responses["5xx"] : null), el("td", {class: "num"}, b.errors)));
          }
          if (!body.firstChild) body.append(el("tr", {}, el("td", {class: "empty", colspan: COLUMNS.length}, "no backends")));
          return el("table", {}, cols, head, body);
        }

        function render(doc) {
          const now = Date.now();
          const next = new Map();
          const counts = {pools: 0, backends: 0, inRotation: 0};
          const sections = [];
          for (const pool of doc.pools || []) {
            counts.pools++;
            const before = {backends: counts.backends, inRotation: counts.inRotation};
            const info = el("span", {class: "info"});
            const section = el("section", {class: "pool", "data-pool": pool.name}, el("h2", {}, "pool " + text(pool.name), info));
            for (const g of pool.groups || []) {
              section.append(el("div", {class: "group", "data-group": g.name}, groupTitle(g), groupTable(pool, g, next, now, counts)));
            }
            if (!(pool.groups || []).length) section.append(el("p", {class: "empty"}, "no groups"));
            info.textContent = (counts.inRotation - before.inRotation) + " of " + (counts.backends - before.backends) + " backends in rotation";
            sections.push(section);
          }
          if (!sections.length) sections.push(el("p", {class: "empty"}, "no pools"));
          document.getElementById("pools").replaceChildren(...sections);
          document.getElementById("summary").textContent =
            counts.pools + (counts.pools === 1 ? " pool, " : " pools, ") + counts.inRotation + " of " + counts.backends + " backends in rotation";
          samples = next;
          lastGood = new Date(now).toLocaleTimeString();
          document.getElementById("updated").textContent = lastGood;
        }

        async function refresh() {
          if (busy) return;
          busy = true;
          const banner = document.getElementById("error");
          const abort = new AbortController();
          const timer = setTimeout(() => abort.abort(), PERIOD - 200);
          try {
            const r = await fetch("/v1/pools", {cache: "no-store", signal: abort.signal});
            if (!r.ok) throw new Error("GET /v1/pools answered " + r.status);
            render(await r.json());
            banner.style.display = "none";
            banner.textContent = "";
          } catch (e) {
            const why = e.name === "AbortError" ? "GET /v1/pools timed out" : e.message;
            banner.textContent = "cannot refresh: " + why + (lastGood ? "; showing data from " + lastGood : "");
            banner.style.display = "block";
          } finally {
            clearTimeout(timer);
            busy = false;
          }
        }
        refresh();
        setInterval(refresh, PERIOD);
        </script>
        </body>
        </html>
        """#
}

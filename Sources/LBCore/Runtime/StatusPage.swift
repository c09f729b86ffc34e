// The status page at `/` of the admin endpoint, for people: one self-contained document (no
// external resources) that reads /v1/pools every 2 s and shows pools, groups with their shares
// and sources, and backends with their three separate states, weights, in-flight and request
// rates (computed in the page from the request counters of two refreshes). The DOM is built with
// createElement/textContent only, never from API text as HTML.

enum StatusPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>lbd status</title>
        <style>
          :root { --ok: #1f7a3a; --warn: #a66300; --bad: #b3261e; --muted: #666; --line: #ddd; }
          body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #f6f7f9; }
          header { background: #1d2733; color: #fff; padding: 12px 24px; display: flex; align-items: baseline; gap: 24px; }
          header h1 { font-size: 18px; margin: 0; }
          header .meta { color: #c9d1da; font-size: 13px; }
          header a { color: #9cc7ff; }
          main { padding: 16px 24px; max-width: 1400px; }
          .banner { display: none; background: #fde8e6; color: var(--bad); border: 1px solid #f4b6b0; padding: 8px 12px; margin-bottom: 12px; border-radius: 4px; }
          section.pool { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin-bottom: 18px; padding: 8px 16px 16px; }
          section.pool h2 { font-size: 16px; margin: 8px 0; }
          .group h3 { font-size: 14px; margin: 14px 0 6px; display: flex; gap: 14px; align-items: baseline; flex-wrap: wrap; }
          .group h3 .info { font-weight: normal; color: var(--muted); }
          table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
          th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
          th { font-weight: 600; color: #444; background: #fafbfc; }
          td.num, th.num { text-align: right; }
          .badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; line-height: 18px; color: #fff; background: var(--muted); }
          .b-ok { background: var(--ok); } .b-warn { background: var(--warn); } .b-bad { background: var(--bad); }
          .share { font-weight: 600; }
          .capped { color: var(--bad); font-weight: 600; }
        </style>
        </head>
        <body>
        <header>
          <h1>lbd</h1>
          <span class="meta">updated <span id="updated">never</span></span>
          <span class="meta"><a href="/v1/pools">/v1/pools</a> · <a href="/metrics">/metrics</a></span>
        </header>
        <main>
          <div class="banner" id="error"></div>
          <div id="pools"></div>
        </main>
        <script>
        "use strict";
        const previous = new Map();   // "pool/group/backend" -> {requests, at}
        const good = new Set(["present", "up", "ready"]);
        const warn = new Set(["stale", "standby", "drain", "new"]);

        function el(tag, attrs, ...children) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) {
            if (k === "class") e.className = v; else e.setAttribute(k, v);
          }
          for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "–" : String(c)));
          return e;
        }

        function badge(value) {
          const v = value == null ? "–" : String(value);
          const kind = good.has(v) ? "b-ok" : warn.has(v) ? "b-warn" : v === "–" || v === "unknown" ? "" : "b-bad";
          return el("span", {class: "badge " + kind}, v);
        }

        function rate(key, requests, now) {
          if (requests == null) return "–";
          const before = previous.get(key);
          previous.set(key, {requests, at: now});
          if (!before || now <= before.at) return "–";
          return ((requests - before.requests) / ((now - before.at) / 1000)).toFixed(1);
        }

        function render(doc) {
          const now = Date.now();
          const root = document.getElementById("pools");
          const pools = [];
          for (const pool of doc.pools || []) {
            const section = el("section", {class: "pool", "data-pool": pool.name}, el("h2", {}, "pool " + pool.name));
            for (const g of pool.groups || []) {
              const info = ["source " + g.source];
              if (g.configured_share != null && g.configured_share !== g.share) info.push("configured " + g.configured_share + "%");
              if (g.discovery) info.push("discovery stale " + g.discovery.stale_seconds + " s, " + g.discovery.slots + " slots");
              const title = el("h3", {},
                "group " + g.name, el("span", {class: "share"}, g.share + "%"), el("span", {class: "info"}, info.join(" · ")));
              if (g.capped) title.append(el("span", {class: "capped"}, "capped"));
              const table = el("table", {},
                el("thead", {}, el("tr", {},
                  ...["backend", "discovery", "health", "admin", "state", "in rotation"].map(h => el("th", {}, h)),
                  ...["weight", "in flight", "req/s", "requests", "5xx", "errors"].map(h => el("th", {class: "num"}, h)))));
              const body = el("tbody");
              for (const b of g.backends || []) {
                const name = b.address || b.id;
                const key = pool.name + "/" + g.name + "/" + name;
                const weight = b.weight == null ? null : (b.effective_weight != null && b.effective_weight !== b.weight ? b.effective_weight + " / " + b.weight : b.weight);
                body.append(el("tr", {"data-backend": name},
                  el("td", {}, name),
                  el("td", {}, badge(b.discovery)), el("td", {}, badge(b.health)), el("td", {}, badge(b.admin)),
                  el("td", {}, badge(b.state)), el("td", {}, b.in_rotation ? "yes" : "no"),
                  el("td", {class: "num"}, weight), el("td", {class: "num"}, b.in_flight),
                  el("td", {class: "num"}, rate(key, b.requests, now)), el("td", {class: "num"}, b.requests),
                  el("td", {class: "num"}, b.responses ? b.responses["5xx"] : null), el("td", {class: "num"}, b.errors)));
              }
              table.append(body);
              section.append(el("div", {class: "group", "data-group": g.name}, title, table));
            }
            pools.push(section);
          }
          root.replaceChildren(...pools);
          document.getElementById("updated").textContent = new Date(now).toLocaleTimeString();
        }

        async function refresh() {
          const banner = document.getElementById("error");
          try {
            const r = await fetch("/v1/pools", {cache: "no-store"});
            if (!r.ok) throw new Error("GET /v1/pools: " + r.status);
            render(await r.json());
            banner.style.display = "none";
          } catch (e) {
            banner.textContent = "cannot refresh: " + e.message;
            banner.style.display = "block";
          }
        }
        refresh();
        setInterval(refresh, 2000);
        </script>
        </body>
        </html>
        """#
}

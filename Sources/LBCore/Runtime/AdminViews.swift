// What the admin endpoint shows: pools, groups and backends with their three separate states
// (discovery: present / absent / stale; health: up / down with counters; admin: ready / drain /
// maint), as JSON; and the same as Prometheus text.
// Control thread only: reads the health monitor and discovery directly.

import Foundation

struct AdminViews {
    let monitor: HealthMonitor
    let discovery: Discovery
    let reloads: () -> (ok: Int, rejected: Int)
    /// The file's config, for the configured shares next to the running ones.
    let fileConfig: () -> LBConfig

    private struct Row {
        let pool: String
        let group: String
        let key: String
        let discoveryState: String
        let member: HealthMonitor.MemberStatus?
    }

    private struct GroupRow {
        let pool: String
        let group: String
        let share: Share
        let source: String
        let capped: Bool
        let srv: SRVGroupDiscovery?
        let rows: [Row]
    }

    private func groups() -> [GroupRow] {
        let config = monitor.currentConfig
        let status = monitor.status()
        var out: [GroupRow] = []
        for (pi, pool) in config.pools.enumerated() {
            for (gi, group) in pool.groups.enumerated() {
                let members = pi < status.count && gi < status[pi].count ? status[pi][gi] : (members: [], capped: false)
                let byAddress = Dictionary(members.members.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
                var rows: [Row] = []
                let srv = discovery.groups.first { $0.pool == pi && $0.group == gi }
                if let srv {
                    let stale = srv.staleSince != nil
                    var shown: Set<SocketAddress> = []
                    for case let slot? in srv.slots.slots {
                        let r = slot.record
                        let state: String
                        if case .absent = slot.presence { state = "absent" } else { state = stale ? "stale" : "present" }
                        shown.insert(r.address)
                        rows.append(Row(pool: pool.name, group: group.name, key: "\(r.key.target):\(r.key.port)",
                                        discoveryState: state, member: state == "absent" ? nil : byAddress[r.address]))
                    }
                    // Members that left the answer but still serve (make before break).
                    for m in members.members where !shown.contains(m.address) {
                        rows.append(Row(pool: pool.name, group: group.name, key: "\(m.address)", discoveryState: "absent", member: m))
                    }
                } else {
                    rows = members.members.map {
                        Row(pool: pool.name, group: group.name, key: "\($0.address)",
                            discoveryState: $0.leaving ? "absent" : "present", member: $0)
                    }
                }
                let source: String
                switch group.source {
                case .staticBackends: source = "static"
                case .srv(let name, _, _): source = name
                }
                out.append(GroupRow(pool: pool.name, group: group.name, share: group.share, source: source,
                                    capped: members.capped, srv: srv, rows: rows))
            }
        }
        return out
    }

    // MARK: JSON

    /// Whether `address` is a member of a group of `pool` now (what the admin API can change).
    func isMember(pool: String, address: SocketAddress) -> Bool {
        groups().contains { $0.pool == pool && $0.rows.contains { $0.member?.address == address } }
    }

    func poolsJSON() -> String {
        let pools = pools(only: nil)
        return "{\"pools\": [" + pools.map(\.body).joined(separator: ", ") + "]}\n"
    }

    /// One pool's JSON, or nil when there is no such pool.
    func poolJSON(_ name: String) -> String? {
        pools(only: name).first.map { $0.body + "\n" }
    }

    private func pools(only: String?) -> [(name: String, body: String)] {
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        let file = fileConfig()
        var pools: [String: [String]] = [:]
        var order: [String] = []
        for g in groups() where only == nil || g.pool == only {
            if pools[g.pool] == nil { order.append(g.pool) }
            let backends = g.rows.map { r -> String in
                var fields = [
                    "\"id\": \(json(r.key))", "\"discovery\": \(json(r.discoveryState))",
                    "\"admin\": \(json(r.member?.admin.rawValue ?? "ready"))",
                ]
                if let m = r.member {
                    fields += [
                        "\"address\": \(json(m.address.description))",
                        "\"health\": \(json(m.checks.map { $0 == .up ? "up" : "down" } ?? (m.state == "ejected" || m.state == "down" ? "down" : "up")))",
                        "\"state\": \(json(m.state))", "\"in_rotation\": \(m.inRotation)",
                        "\"weight\": \(m.weight)", "\"effective_weight\": \(m.effectiveWeight)",
                        "\"checks\": {\"enabled\": \(m.checks != nil), \"successes\": \(m.successes), \"failures\": \(m.failures)}",
                        "\"ejections\": \(m.ejections)", "\"in_flight\": \(m.inFlight)",
                    ]
                } else {
                    fields += ["\"health\": \"unknown\"", "\"in_rotation\": false"]
                }
                return "{" + fields.joined(separator: ", ") + "}"
            }
            let configured = file.pools.first { $0.name == g.pool }?.groups.first { $0.name == g.group }?.share ?? g.share
            var groupFields = [
                "\"name\": \(json(g.group))", "\"share\": \(Double(g.share.basisPoints) / 100)",
                "\"configured_share\": \(Double(configured.basisPoints) / 100)",
                "\"source\": \(json(g.source))", "\"capped\": \(g.capped)",
            ]
            if let srv = g.srv {
                let stale = srv.staleSince.map { Double((now - $0).milliseconds) / 1000 } ?? 0
                groupFields += [
                    "\"discovery\": {\"stale_seconds\": \(stale), \"overflow_total\": \(srv.slots.overflowTotal), "
                        + "\"slots\": \(srv.slots.slots.count), \"resolutions\": \(srv.resolutions), "
                        + "\"failures\": \(srv.failures), \"last_failure\": \(json(srv.lastFailure))}"
                ]
            }
            groupFields.append("\"backends\": [" + backends.joined(separator: ", ") + "]")
            pools[g.pool, default: []].append("{" + groupFields.joined(separator: ", ") + "}")
        }
        return order.map { ($0, "{\"name\": \(json($0)), \"groups\": [" + (pools[$0] ?? []).joined(separator: ", ") + "]}") }
    }

    private func json(_ s: String) -> String { jsonString(s) }

    // MARK: Prometheus text

    func metrics() -> String {
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        var out: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            out.append("# HELP \(name) \(help)")
            out.append("# TYPE \(name) \(type)")
        }
        func label(_ s: String) -> String { s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
        let all = groups()
        family("lbd_backend_in_rotation", "gauge", "1 if the backend receives traffic.")
        for g in all { for r in g.rows {
            out.append("lbd_backend_in_rotation{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\",backend=\"\(label(r.key))\",discovery=\"\(r.discoveryState)\"} \((r.member?.inRotation ?? false) ? 1 : 0)")
        } }
        family("lbd_backend_in_flight", "gauge", "Requests in flight on the backend.")
        for g in all { for r in g.rows { if let m = r.member {
            out.append("lbd_backend_in_flight{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\",backend=\"\(label(r.key))\"} \(m.inFlight)")
        } } }
        family("lbd_backend_weight", "gauge", "Effective weight (slow start applied).")
        for g in all { for r in g.rows { if let m = r.member {
            out.append("lbd_backend_weight{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\",backend=\"\(label(r.key))\"} \(m.effectiveWeight)")
        } } }
        family("lbd_group_capped", "gauge", "1 if health would take out more than max_unhealthy of the group.")
        for g in all { out.append("lbd_group_capped{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\"} \(g.capped ? 1 : 0)") }
        family("lbd_discovery_stale_seconds", "gauge", "Seconds since discovery last succeeded, while it fails (0 when fresh).")
        for g in all { if let s = g.srv {
            let stale = s.staleSince.map { Double((now - $0).milliseconds) / 1000 } ?? 0
            out.append("lbd_discovery_stale_seconds{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\"} \(stale)")
        } }
        family("lbd_discovery_overflow_total", "counter", "SRV records that found no free slot.")
        for g in all { if let s = g.srv {
            out.append("lbd_discovery_overflow_total{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\"} \(s.slots.overflowTotal)")
        } }
        family("lbd_discovery_resolutions_total", "counter", "SRV resolutions started.")
        for g in all { if let s = g.srv {
            out.append("lbd_discovery_resolutions_total{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\"} \(s.resolutions)")
        } }
        family("lbd_discovery_failures_total", "counter", "SRV resolutions that failed (the last good set stayed).")
        for g in all { if let s = g.srv {
            out.append("lbd_discovery_failures_total{pool=\"\(label(g.pool))\",group=\"\(label(g.group))\"} \(s.failures)")
        } }
        let r = reloads()
        family("lbd_reloads_total", "counter", "Configuration reloads by outcome.")
        out.append("lbd_reloads_total{result=\"ok\"} \(r.ok)")
        out.append("lbd_reloads_total{result=\"rejected\"} \(r.rejected)")
        return out.joined(separator: "\n") + "\n"
    }
}

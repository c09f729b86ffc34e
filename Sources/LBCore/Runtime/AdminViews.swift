// What the admin endpoint shows: pools, groups and backends with their three separate states
// (discovery: present / absent / stale; health: up / down with counters; admin: ready / drain /
// maint), as JSON; and the same as Prometheus text.
// Control thread only: reads the health monitor and discovery directly.

import Foundation
import Prometheus
import VRRP

struct AdminViews {
    let monitor: HealthMonitor
    let discovery: Discovery
    let reloads: () -> (ok: Int, rejected: Int)
    /// The file's config, for the configured shares next to the running ones.
    let fileConfig: () -> LBConfig
    /// The pair: the VRRP engine's status, peer sync's counters, the settings; nils without a pair.
    let pair: () -> (VRRPStatus?, PeerSyncStats?, VRRPSettings?)
    /// TLS listeners and their counters.
    var tls: () -> [(listener: String, slot: TLSSlot)] = { [] }
    /// Per listener: its open connections and what it turned away or timed out.
    var listeners: () -> [(listener: String, open: Int, stats: ListenerStats)] = { [] }
    /// Connection buffers against limits.max_buffer_total.
    var buffers: BufferStats?
    var backendTLS: BackendTLSRegistry?

    private struct Row {
        let pool: String
        let group: String
        let key: String
        let discoveryState: String
        let member: HealthMonitor.MemberStatus?
        /// The weight discovery gives it (for a slot with no member).
        var recordWeight = 1
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
                                        discoveryState: state, member: state == "absent" ? nil : byAddress[r.address],
                                        recordWeight: max(1, r.weight)))
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
                        "\"requests\": \(m.stats.requestCount)", "\"errors\": \(m.stats.errorCount)",
                        "\"responses\": {" + zip(["1xx", "2xx", "3xx", "4xx", "5xx"], m.stats.responseCounts)
                            .map { "\"\($0)\": \($1)" }.joined(separator: ", ") + "}",
                    ]
                } else {
                    // A slot discovery holds with no member: it serves nothing and counts nothing.
                    fields += [
                        "\"health\": \"unknown\"", "\"state\": \"absent\"", "\"in_rotation\": false",
                        "\"weight\": \(r.recordWeight)", "\"effective_weight\": 0",
                        "\"checks\": {\"enabled\": false, \"successes\": 0, \"failures\": 0}",
                        "\"ejections\": 0", "\"in_flight\": 0", "\"requests\": 0", "\"errors\": 0",
                        "\"responses\": {\"1xx\": 0, \"2xx\": 0, \"3xx\": 0, \"4xx\": 0, \"5xx\": 0}",
                    ]
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

    /// /metrics: the state of pools, groups and backends, and their traffic, rendered through
    /// swift-prometheus. Point-in-time values (states, weights, counts kept as atomics by the
    /// workers) go into a registry made for this scrape; the latency histograms live in the
    /// health monitor's registry, which the workers record into.
    func metrics() -> String {
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        let r = PrometheusCollectorRegistry()
        // Names are whole (unit included), so the descriptor's unit part stays empty.
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            r.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels).set(value)
        }
        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int) {
            r.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
                .increment(by: Int64(value))
        }
        func traffic(_ level: String, _ labels: [(String, String)], _ stats: TrafficStats) {
            let help = level == "pool"
                ? "Requests received for the pool." : "Requests sent to the \(level) (each attempt on a backend counts)."
            counter("lbd_\(level)_requests_total", help, labels, stats.requestCount)
            for (c, n) in zip(["1xx", "2xx", "3xx", "4xx", "5xx"], stats.responseCounts) {
                counter("lbd_\(level)_responses_total", "Responses by status class.", labels + [("class", c)], n)
            }
            if level != "pool" {
                counter("lbd_\(level)_errors_total", "Attempts that got no complete response: connect failures, resets, timeouts.", labels, stats.errorCount)
            }
        }
        let all = groups()
        var pools: [String] = []
        for g in all {
            if !pools.contains(g.pool) { pools.append(g.pool) }
            let gl = [("pool", g.pool), ("group", g.group)]
            gauge("lbd_group_share_percent", "The group's share of the pool's traffic.", gl, Double(g.share.basisPoints) / 100)
            gauge("lbd_group_capped", "1 if health would take out more than max_unhealthy of the group.", gl, g.capped ? 1 : 0)
            traffic("group", gl, monitor.stats(pool: g.pool, group: g.group))
            if let s = g.srv {
                let stale = s.staleSince.map { Double((now - $0).milliseconds) / 1000 } ?? 0
                gauge("lbd_discovery_stale_seconds", "Seconds since discovery last succeeded, while it fails (0 when fresh).", gl, stale)
                counter("lbd_discovery_overflow_total", "SRV records that found no free slot.", gl, s.slots.overflowTotal)
                counter("lbd_discovery_resolutions_total", "SRV resolutions started.", gl, s.resolutions)
                counter("lbd_discovery_failures_total", "SRV resolutions that failed (the last good set stayed).", gl, s.failures)
            }
            for row in g.rows {
                // `backend` is the address, like the other backend series; `id` is /v1/pools' id
                // (the SRV target and port), which also names a slot with no member.
                let bl = gl + [("backend", row.member?.address.description ?? row.key), ("id", row.key)]
                gauge("lbd_backend_in_rotation", "1 if the backend receives traffic.", bl + [("discovery", row.discoveryState)],
                      (row.member?.inRotation ?? false) ? 1 : 0)
                guard let m = row.member else { continue }
                let ml = gl + [("backend", m.address.description)]
                gauge("lbd_backend_up", "1 if the backend passes its health checks (or has none) and is not ejected.", ml,
                      m.state == "down" || m.state == "ejected" || m.state == "new" ? 0 : 1)
                for state in AdminState.allCases {
                    gauge("lbd_backend_admin_state", "The backend's admin state (1 for the current one).", ml + [("state", state.rawValue)],
                          m.admin == state ? 1 : 0)
                }
                gauge("lbd_backend_in_flight", "Requests in flight on the backend.", ml, Double(m.inFlight))
                gauge("lbd_backend_weight", "Effective weight (slow start applied).", ml, Double(m.effectiveWeight))
                traffic("backend", ml, m.stats)
            }
        }
        for p in pools { traffic("pool", [("pool", p)], monitor.stats(pool: p, group: nil)) }
        for (resolver, n) in discovery.droppedReplies() {
            counter("lbd_dns_replies_dropped_total",
                    "DNS replies dropped: malformed, or not an answer to the question asked (ID, question, QR, opcode, size).",
                    [("resolver", resolver)], n)
        }
        pairMetrics(gauge: gauge, counter: counter)
        if let b = backendTLS {
            counter("lbd_backend_tls_failures_total", "TLS handshakes to backends that failed, by reason.", [("reason", "verify")], b.verifyFailures.current)
            counter("lbd_backend_tls_failures_total", "TLS handshakes to backends that failed, by reason.", [("reason", "other")], b.otherFailures.current)
        }
        for (listener, slot) in tls() {
            let l = [("listener", listener)]
            counter("lbd_tls_handshakes_total", "Completed TLS handshakes.", l, slot.stats.handshakes.current)
            for (reason, n) in slot.stats.failureCounts() {
                counter("lbd_tls_handshake_failures_total", "Connections that failed before the TLS handshake completed, by reason.", l + [("reason", reason)], n)
            }
            counter("lbd_tls_reloads_total", "Certificate reloads by outcome.", l + [("result", "ok")], slot.reloads.current)
            counter("lbd_tls_reloads_total", "Certificate reloads by outcome.", l + [("result", "rejected")], slot.reloadFailures.current)
            counter("lbd_tls_ticket_key_rotations_total", "Session-ticket key rotations (every tls.ticket_key_lifetime).", l, slot.ticketKeyRotations.current)
        }
        for l in listeners() {
            let ll = [("listener", l.listener)]
            gauge("lbd_listener_connections", "Open client connections.", ll, Double(l.open))
            counter("lbd_listener_refused_total", "Connections closed at accept because the listener was at maxconn.", ll, l.stats.refusedMaxconn.current)
            counter("lbd_listener_accept_errors_total", "accept() failures (out of file descriptors...); each pauses the listener 100 ms.", ll, l.stats.acceptErrors.current)
            counter("lbd_client_write_timeouts_total", "Clients closed for taking none of their buffered response for timeouts.client_write.", ll, l.stats.clientWriteTimeouts.current)
            for (status, n) in l.stats.rejectedCounts {
                counter("lbd_requests_rejected_total", "Requests lbd answered itself without forwarding (malformed, over a limit, too slow), by status.",
                        ll + [("status", "\(status)")], n)
            }
            counter("lbd_client_body_timeouts_total", "Requests answered 408 because the client sent under 1 KiB of body in timeouts.client_body.", ll, l.stats.clientBodyTimeouts.current)
        }
        if let b = buffers {
            gauge("lbd_buffered_bytes", "Bytes held in connection buffers, all workers.", [], Double(b.held.current))
            gauge("lbd_buffered_bytes_limit", "limits.max_buffer_total.", [], Double(b.limit))
            counter("lbd_buffer_pauses_total", "Times a connection stopped reading because its worker's buffers were over its share of limits.max_buffer_total.", [], b.pauses.current)
            counter("lbd_buffer_squeeze_rejections_total", "Requests answered 503 because their body stalled while lbd had stopped reading it for limits.max_buffer_total.", [], b.squeezed.current)
        }
        let reloads = reloads()
        counter("lbd_reloads_total", "Configuration reloads by outcome.", [("result", "ok")], reloads.ok)
        counter("lbd_reloads_total", "Configuration reloads by outcome.", [("result", "rejected")], reloads.rejected)
        var buffer: [UInt8] = []
        r.emit(into: &buffer)
        monitor.metrics.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

// Stage one: `Yams.Node` → `RawConfig`, reporting shape problems (see RawConfig.swift).
// The allowed keys of every mapping are listed here, next to the code that reads them, so an
// unknown key anywhere in the file is reported instead of being ignored.

import Yams

/// Reads a composed YAML document into ``RawConfig``.
struct RawConfigDecoder {
    var reader = NodeReader()

    /// Decodes the document root; `nil` (an empty file) or a null reads as an empty mapping.
    mutating func decode(_ root: Node?) -> RawConfig {
        var config = RawConfig()
        let allowed = [
            "workers", "admin", "state_file", "resolvers", "timeouts", "limits", "log", "pools", "listeners", "failover",
        ]
        // An empty file, or one holding only `---` or a null, reads as an empty mapping.
        let node = root.flatMap { $0.isNull ? nil : $0 } ?? Node.mapping(Node.Mapping([]))
        guard let top = reader.fields(node, at: .root, allowed: allowed) else { return config }
        config.workers = reader.int("workers", in: top)
        config.stateFile = reader.text("state_file", in: top)
        if let admin = reader.fields("admin", in: top, allowed: ["listen", "token_file"]) {
            config.admin = RawAdmin(
                listen: reader.text("listen", in: admin), tokenFile: reader.text("token_file", in: admin))
        }
        config.resolvers = namedEntries("resolvers", in: top, decode: { $0.decodeResolver($1, at: $2) })
        config.timeouts = decodeTimeouts(top)
        config.limits = decodeLimits(top)
        if let log = reader.fields("log", in: top, allowed: ["level", "access_log"]) {
            config.log = RawLog(
                level: reader.text("level", in: log), accessLog: reader.bool("access_log", in: log))
        }
        reader.require("pools", in: top)
        if top.has("pools") {
            config.pools = namedEntries("pools", in: top, decode: { $0.decodePool($1, at: $2) })
        }
        reader.require("listeners", in: top)
        if let items = reader.items(top["listeners"], at: .root.key("listeners")) {
            config.listeners = items.enumerated().map { index, item in
                decodeListener(item, at: ConfigPath.root.key("listeners").index(index))
            }
        }
        config.failover = decodeFailover(top)
        return config
    }

    /// A mapping whose keys are names (`pools`, `groups`, `resolvers`), in file order: `[]` if absent
    /// or null, nil if not a mapping (already reported). An entry whose value has the wrong shape is
    /// kept with empty fields (already reported), so references to its name still resolve and no
    /// second problem is reported for them.
    private mutating func namedEntries<Value>(
        _ key: String, in parent: FieldSet, decode: (inout Self, Node, ConfigPath) -> Value
    ) -> [RawEntry<Value>]? {
        guard let node = parent[key], !node.isNull else { return [] }
        let path = parent.path.key(key)
        guard let entries = reader.entries(node, at: path) else { return nil }
        return entries.map { name, value in
            RawEntry(name: name, value: decode(&self, value, path.key(name)))
        }
    }

    private mutating func decodeTimeouts(_ top: FieldSet) -> RawTimeouts {
        let keys = [
            "client_head", "client_idle", "backend_connect", "backend_response", "backend_idle", "tcp_idle",
            "client_write", "client_body", "shutdown_grace",
        ]
        guard let fields = reader.fields("timeouts", in: top, allowed: keys) else { return RawTimeouts() }
        return RawTimeouts(
            clientHead: reader.text("client_head", in: fields),
            clientIdle: reader.text("client_idle", in: fields),
            clientWrite: reader.text("client_write", in: fields),
            clientBody: reader.text("client_body", in: fields),
            backendConnect: reader.text("backend_connect", in: fields),
            backendResponse: reader.text("backend_response", in: fields),
            backendIdle: reader.text("backend_idle", in: fields),
            tcpIdle: reader.text("tcp_idle", in: fields),
            shutdownGrace: reader.text("shutdown_grace", in: fields))
    }

    private mutating func decodeLimits(_ top: FieldSet) -> RawLimits {
        let keys = [
            "max_request_line", "max_header_bytes", "max_header_count", "max_chunk_extension",
            "max_pipeline_depth", "max_buffer", "max_buffer_total",
        ]
        guard let fields = reader.fields("limits", in: top, allowed: keys) else { return RawLimits() }
        return RawLimits(
            maxRequestLine: reader.int("max_request_line", in: fields),
            maxHeaderBytes: reader.int("max_header_bytes", in: fields),
            maxHeaderCount: reader.int("max_header_count", in: fields),
            maxChunkExtension: reader.int("max_chunk_extension", in: fields),
            maxPipelineDepth: reader.int("max_pipeline_depth", in: fields),
            maxBuffer: reader.int("max_buffer", in: fields),
            maxBufferTotal: reader.int("max_buffer_total", in: fields))
    }

    private mutating func decodeResolver(_ node: Node, at path: ConfigPath) -> RawResolver {
        guard let fields = reader.fields(node, at: path, allowed: ["nameservers", "interval", "timeout", "hold", "family"]) else {
            return RawResolver()
        }
        reader.require("nameservers", in: fields)
        let serversPath = path.key("nameservers")
        let servers = reader.items(fields["nameservers"], at: serversPath)?.enumerated().map { index, item in
            reader.text(item, at: serversPath.index(index))
        }
        return RawResolver(
            nameservers: servers, interval: reader.text("interval", in: fields),
            timeout: reader.text("timeout", in: fields), hold: reader.text("hold", in: fields),
            family: reader.text("family", in: fields))
    }

    private mutating func decodePool(_ node: Node, at path: ConfigPath) -> RawPool {
        let allowed = [
            "balance", "max_unhealthy", "retries", "groups", "health", "passive", "slow_start", "retry_budget", "hooks",
        ]
        guard let fields = reader.fields(node, at: path, allowed: allowed) else { return RawPool() }
        var pool = RawPool(
            balance: reader.text("balance", in: fields),
            maxUnhealthy: reader.text("max_unhealthy", in: fields),
            retries: reader.int("retries", in: fields),
            slowStart: reader.text("slow_start", in: fields),
            retryBudget: reader.text("retry_budget", in: fields))
        if let hooks = reader.fields("hooks", in: fields, allowed: ["command", "min_interval"]) {
            reader.require("command", in: hooks)
            pool.hooks = RawHooks(
                command: reader.text("command", in: hooks), minInterval: reader.text("min_interval", in: hooks))
        }
        let passiveKeys = ["failures", "ejection", "max_ejection", "backoff", "reset_after", "on_5xx"]
        if let passive = reader.fields("passive", in: fields, allowed: passiveKeys) {
            pool.passive = RawPassive(
                failures: reader.int("failures", in: passive), ejection: reader.text("ejection", in: passive),
                maxEjection: reader.text("max_ejection", in: passive), backoff: reader.text("backoff", in: passive),
                resetAfter: reader.text("reset_after", in: passive), on5xx: reader.bool("on_5xx", in: passive))
        }
        reader.require("groups", in: fields)
        if fields.has("groups") {
            pool.groups = namedEntries("groups", in: fields, decode: { $0.decodeGroup($1, at: $2) })
        }
        let healthKeys = ["http", "tcp", "interval", "timeout", "rise", "fall"]
        if let health = reader.fields("health", in: fields, allowed: healthKeys) {
            pool.health = decodeHealth(health)
        }
        return pool
    }

    private mutating func decodeGroup(_ node: Node, at path: ConfigPath) -> RawGroup {
        let allowed = ["share", "static", "srv", "resolver", "slots", "tls"]
        guard let fields = reader.fields(node, at: path, allowed: allowed) else { return RawGroup() }
        reader.require("share", in: fields)
        var group = RawGroup(share: reader.text("share", in: fields))
        if let tls = reader.fields("tls", in: fields, allowed: ["ca_file", "server_name", "verify", "cert", "key"]) {
            group.tls = RawBackendTLS(
                caFile: reader.text("ca_file", in: tls), serverName: reader.text("server_name", in: tls),
                verify: reader.bool("verify", in: tls), cert: reader.text("cert", in: tls), key: reader.text("key", in: tls))
        }
        switch (fields.has("static"), fields.has("srv")) {
        case (true, true):
            reader.problems.add(path, "has both 'static' and 'srv'; a group needs exactly one")
        case (false, false):
            reader.problems.add(path, "has neither 'static' nor 'srv'; a group needs exactly one")
        case (true, false):
            for key in ["resolver", "slots"] where fields.has(key) {
                reader.problems.add(path.key(key), "'\(key)' applies only to 'srv' groups, not 'static'")
            }
            let staticPath = path.key("static")
            guard let items = reader.items(fields["static"], at: staticPath) else { break }
            let backends = items.enumerated().map { index, item in
                decodeBackend(item, at: staticPath.index(index))
            }
            group.source = .staticBackends(backends)
        case (false, true):
            reader.require("resolver", in: fields)
            guard let name = reader.text("srv", in: fields) else { break }
            group.source = .srv(
                name: name, resolver: reader.text("resolver", in: fields), slots: reader.int("slots", in: fields))
        }
        return group
    }

    private mutating func decodeBackend(_ node: Node, at path: ConfigPath) -> RawBackend {
        if case .scalar = node {
            if node.isNull { reader.problems.add(path, "expected an address, found an empty entry") }
            return RawBackend(address: reader.text(node, at: path), weight: nil, isBareAddress: true)
        }
        guard let fields = reader.fields(node, at: path, allowed: ["address", "weight"]) else {
            return RawBackend(address: nil, weight: nil, isBareAddress: false)
        }
        reader.require("address", in: fields)
        return RawBackend(
            address: reader.text("address", in: fields), weight: reader.int("weight", in: fields),
            isBareAddress: false)
    }

    private mutating func decodeHealth(_ fields: FieldSet) -> RawHealth {
        var health = RawHealth(
            interval: reader.text("interval", in: fields), timeout: reader.text("timeout", in: fields),
            rise: reader.int("rise", in: fields), fall: reader.int("fall", in: fields))
        // `tcp:` or `http:` alone (a null value) means that check with default options.
        switch (fields["http"] != nil, fields["tcp"] != nil) {
        case (true, true):
            reader.problems.add(fields.path, "has both 'http' and 'tcp'; a health check needs exactly one")
        case (false, false):
            reader.problems.add(fields.path, "has neither 'http' nor 'tcp'; a health check needs exactly one")
        case (false, true):
            if let node = fields["tcp"], !node.isNull {
                guard reader.fields(node, at: fields.path.key("tcp"), allowed: []) != nil else { break }
            }
            health.check = .tcp
        case (true, false):
            guard fields.has("http") else {
                health.check = .http(path: nil, expect: nil)
                break
            }
            guard let http = reader.fields("http", in: fields, allowed: ["path", "expect"]) else { break }
            health.check = .http(path: reader.text("path", in: http), expect: reader.int("expect", in: http))
        }
        return health
    }

    private mutating func decodeListener(_ node: Node, at path: ConfigPath) -> RawListener {
        let allowed = ["name", "bind", "mode", "pool", "maxconn", "tls"]
        guard let fields = reader.fields(node, at: path, allowed: allowed) else { return RawListener() }
        for key in ["name", "bind", "pool"] {
            reader.require(key, in: fields)
        }
        var certificates: [(cert: String?, key: String?)?]?
        var ticketKeyLifetime: String?
        var ciphersuites: String?
        var ciphers: String?
        var sessionTickets: Int?
        let tlsKeys = ["certificates", "ticket_key_lifetime", "ciphersuites", "ciphers", "session_tickets"]
        if let tls = reader.fields("tls", in: fields, allowed: tlsKeys) {
            ticketKeyLifetime = reader.text("ticket_key_lifetime", in: tls)
            ciphersuites = reader.text("ciphersuites", in: tls)
            ciphers = reader.text("ciphers", in: tls)
            sessionTickets = reader.int("session_tickets", in: tls)
            reader.require("certificates", in: tls)
            let listPath = tls.path.key("certificates")
            if tls.has("certificates") {
                certificates = (reader.items(tls["certificates"], at: listPath) ?? []).enumerated().map { i, item in
                    guard let c = reader.fields(item, at: listPath.index(i), allowed: ["cert", "key"]) else { return nil }
                    reader.require("cert", in: c)
                    reader.require("key", in: c)
                    return (reader.text("cert", in: c), reader.text("key", in: c))
                }
            } else {
                // Missing (already reported): one malformed item, so "at least one" is not said too.
                certificates = [nil]
            }
        }
        return RawListener(
            name: reader.text("name", in: fields), bind: reader.text("bind", in: fields),
            mode: reader.text("mode", in: fields), pool: reader.text("pool", in: fields),
            maxconn: reader.int("maxconn", in: fields), certificates: certificates, ticketKeyLifetime: ticketKeyLifetime,
            ciphersuites: ciphersuites, ciphers: ciphers, sessionTickets: sessionTickets)
    }
}

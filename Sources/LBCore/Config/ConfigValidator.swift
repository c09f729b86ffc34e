// Stage two: `RawConfig` → `LBConfig`, reporting value problems (see RawConfig.swift).
//
// Every check records its problem and carries on with a stand-in value, so one pass finds every
// problem; the result is only returned to callers when no problem was found. Helpers return nil
// for an invalid value (so cross-field checks can skip it) and the default for an absent one.
// Pools, groups and health checks are in ConfigValidator+Pools.swift.

/// Validates a ``RawConfig`` into an ``LBConfig``, collecting every problem.
struct ConfigValidator {
    var problems = ProblemCollector()
    /// `workers` when the file has none, already clamped to `workerRange`.
    let defaultWorkers: Int

    static let workerRange = 1...256
    static let maxconnRange = 1...1_000_000
    /// Upper bound for byte-count limits, so later size arithmetic cannot overflow.
    static let maxLimitBytes = 1 << 30

    init(defaultWorkers: Int) {
        self.defaultWorkers = min(max(defaultWorkers, Self.workerRange.lowerBound), Self.workerRange.upperBound)
    }

    /// The validated config; meaningful only if `problems` is still empty afterwards.
    mutating func validate(_ raw: RawConfig) -> LBConfig {
        let root = ConfigPath.root
        let workers = int(raw.workers, at: root.key("workers"), in: Self.workerRange, default: defaultWorkers)
        var admin: AdminConfig?
        if let rawAdmin = raw.admin {
            let listenPath = root.key("admin").key("listen")
            let listen = rawAdmin.listen.flatMap { address($0, at: listenPath) }
            let tokenFile = rawAdmin.tokenFile.flatMap { filePath($0, at: root.key("admin").key("token_file")) }
            admin = AdminConfig(listen: listen ?? SocketAddress(host: "127.0.0.1", port: 9901), tokenFile: tokenFile)
        }
        let resolvers = (raw.resolvers ?? []).map {
            validateResolver($0, at: root.key("resolvers").key($0.name))
        }
        let resolverNames = raw.resolvers?.map(\.name)
        if raw.pools?.isEmpty == true {
            problems.add(root.key("pools"), "at least one pool is required")
        }
        let pools = (raw.pools ?? []).map {
            validatePool($0, at: root.key("pools").key($0.name), resolverNames: resolverNames)
        }
        var config = LBConfig(
            workers: workers ?? defaultWorkers,
            admin: admin,
            stateFile: raw.stateFile.flatMap { filePath($0, at: root.key("state_file")) },
            resolvers: resolvers.sorted { $0.name < $1.name },
            pools: pools.sorted { $0.name < $1.name },
            listeners: validateListeners(raw.listeners, poolNames: raw.pools?.map(\.name)),
            timeouts: validateTimeouts(raw.timeouts),
            limits: validateLimits(raw.limits),
            log: validateLog(raw.log))
        config.failover = raw.failover.flatMap { validateFailover($0, poolNames: raw.pools?.map(\.name)) }
        return config
    }

    private mutating func validateResolver(_ entry: RawEntry<RawResolver>, at path: ConfigPath) -> ResolverConfig {
        name(entry.name, at: path)
        let raw = entry.value
        let serversPath = path.key("nameservers")
        if raw.nameservers?.isEmpty == true {
            problems.add(serversPath, "at least one nameserver is required")
        }
        let servers = (raw.nameservers ?? []).enumerated().compactMap { index, text in
            text.flatMap { address($0, at: serversPath.index(index)) }
        }
        let interval = duration(raw.interval, at: path.key("interval"), default: .seconds(1))
        let timeout = duration(raw.timeout, at: path.key("timeout"), default: .milliseconds(500))
        let hold = duration(raw.hold, at: path.key("hold"), default: .seconds(10), allowZero: true)
        var family = ResolverConfig.Family.ipv4
        if let text = raw.family {
            if let f = ResolverConfig.Family(rawValue: text) {
                family = f
            } else {
                problems.add(path.key("family"), "must be one of ipv4, ipv6 (got '\(text)')")
            }
        }
        return ResolverConfig(
            name: entry.name, nameservers: servers, interval: interval ?? .seconds(1),
            timeout: timeout ?? .milliseconds(500), hold: hold ?? .seconds(10), family: family)
    }

    private mutating func validateListeners(_ raw: [RawListener]?, poolNames: [String]?) -> [ListenerConfig] {
        let path = ConfigPath.root.key("listeners")
        guard let raw else { return [] }
        if raw.isEmpty {
            problems.add(path, "at least one listener is required")
        }
        var firstByName: [String: Int] = [:]
        var firstByBind: [SocketAddress: Int] = [:]
        var listeners: [ListenerConfig] = []
        for (index, listener) in raw.enumerated() {
            let itemPath = path.index(index)
            if let name = listener.name, self.name(name, at: itemPath.key("name")) {
                if let first = firstByName[name] {
                    problems.add(itemPath.key("name"), "'\(name)' is already the name of listeners[\(first)]")
                } else {
                    firstByName[name] = index
                }
            }
            let bind = listener.bind.flatMap { address($0, at: itemPath.key("bind")) }
            if let bind {
                if let first = firstByBind[bind] {
                    problems.add(itemPath.key("bind"), "\(bind) is already bound by listeners[\(first)]")
                } else {
                    firstByBind[bind] = index
                }
            }
            let mode = listener.mode.flatMap {
                choice($0, at: itemPath.key("mode"), what: "listener mode", among: [ListenerMode.http, .tcp])
            }
            if let pool = listener.pool {
                reference(pool, at: itemPath.key("pool"), kind: "pool", defined: poolNames)
            }
            let maxconn = int(listener.maxconn, at: itemPath.key("maxconn"), in: Self.maxconnRange, default: 10_000)
            var tls: ListenerTLSConfig?
            if let certificates = listener.certificates {
                let cpath = itemPath.key("tls").key("certificates")
                if certificates.isEmpty { problems.add(cpath, "at least one certificate is required") }
                if mode == .tcp { problems.add(itemPath.key("tls"), "TLS termination needs mode http") }
                var list: [ListenerTLSConfig.Certificate] = []
                for (i, c) in certificates.enumerated() {
                    guard let c, let certText = c.cert, let keyText = c.key else { continue }
                    let cert = filePath(certText, at: cpath.index(i).key("cert"))
                    let key = filePath(keyText, at: cpath.index(i).key("key"))
                    if let cert, let key { list.append(.init(cert: cert, key: key)) }
                }
                let lifetime = duration(
                    listener.ticketKeyLifetime, at: itemPath.key("tls").key("ticket_key_lifetime"),
                    default: ListenerTLSConfig.defaultTicketKeyLifetime)
                let tlsPath = itemPath.key("tls")
                var config = ListenerTLSConfig(certificates: list, ticketKeyLifetime: lifetime ?? ListenerTLSConfig.defaultTicketKeyLifetime)
                // The lists themselves are checked by OpenSSL when the contexts are built.
                if let text = listener.ciphersuites { config.ciphersuites = text }
                if let text = listener.ciphers { config.ciphers = text }
                let tickets = int(
                    listener.sessionTickets, at: tlsPath.key("session_tickets"), in: ListenerTLSConfig.sessionTicketsRange,
                    default: 1)
                config.sessionTickets = tickets ?? 1
                tls = config
            }
            guard let name = listener.name, let bind, let pool = listener.pool else { continue }
            listeners.append(
                ListenerConfig(
                    name: name, bind: bind, mode: mode ?? .http, pool: pool, maxconn: maxconn ?? 10_000, tls: tls))
        }
        return listeners
    }

    private mutating func validateTimeouts(_ raw: RawTimeouts) -> TimeoutsConfig {
        let path = ConfigPath.root.key("timeouts")
        let defaults = TimeoutsConfig()
        func read(_ text: String?, _ key: String, _ fallback: Duration) -> Duration {
            duration(text, at: path.key(key), default: fallback) ?? fallback
        }
        return TimeoutsConfig(
            clientHead: read(raw.clientHead, "client_head", defaults.clientHead),
            clientIdle: read(raw.clientIdle, "client_idle", defaults.clientIdle),
            clientWrite: read(raw.clientWrite, "client_write", defaults.clientWrite),
            clientBody: read(raw.clientBody, "client_body", defaults.clientBody),
            backendConnect: read(raw.backendConnect, "backend_connect", defaults.backendConnect),
            backendResponse: read(raw.backendResponse, "backend_response", defaults.backendResponse),
            backendIdle: read(raw.backendIdle, "backend_idle", defaults.backendIdle),
            tcpIdle: read(raw.tcpIdle, "tcp_idle", defaults.tcpIdle),
            shutdownGrace: read(raw.shutdownGrace, "shutdown_grace", defaults.shutdownGrace))
    }

    private mutating func validateLimits(_ raw: RawLimits) -> HTTPLimits {
        let path = ConfigPath.root.key("limits")
        let defaults = HTTPLimits()
        let bytes = Self.maxLimitBytes
        func read(_ value: Int?, _ key: String, _ range: ClosedRange<Int>, _ fallback: Int) -> Int? {
            int(value, at: path.key(key), in: range, default: fallback)
        }
        let requestLine = read(raw.maxRequestLine, "max_request_line", 64...bytes, defaults.maxRequestLine)
        let headerBytes = read(raw.maxHeaderBytes, "max_header_bytes", 1024...bytes, defaults.maxHeaderBytes)
        if let requestLine, let headerBytes, headerBytes < requestLine {
            problems.add(
                path.key("max_header_bytes"),
                "\(headerBytes) is less than max_request_line \(requestLine); the header section includes it")
        }
        return HTTPLimits(
            maxRequestLine: requestLine ?? defaults.maxRequestLine,
            maxHeaderBytes: headerBytes ?? defaults.maxHeaderBytes,
            maxHeaderCount: read(raw.maxHeaderCount, "max_header_count", 1...10_000, defaults.maxHeaderCount)
                ?? defaults.maxHeaderCount,
            maxChunkExtension: read(raw.maxChunkExtension, "max_chunk_extension", 1...bytes, defaults.maxChunkExtension)
                ?? defaults.maxChunkExtension,
            maxPipelineDepth: read(raw.maxPipelineDepth, "max_pipeline_depth", 1...1024, defaults.maxPipelineDepth)
                ?? defaults.maxPipelineDepth,
            maxBuffer: read(raw.maxBuffer, "max_buffer", 16_384...bytes, defaults.maxBuffer) ?? defaults.maxBuffer,
            maxBufferTotal: read(raw.maxBufferTotal, "max_buffer_total", HTTPLimits.maxBufferTotalRange, defaults.maxBufferTotal)
                ?? defaults.maxBufferTotal)
    }

    private mutating func validateLog(_ raw: RawLog) -> LogConfig {
        let path = ConfigPath.root.key("log").key("level")
        let levels: [LogConfig.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
        let level = raw.level.flatMap { choice($0, at: path, what: "log level", among: levels) }
        return LogConfig(level: level ?? .info, accessLog: raw.accessLog ?? true)
    }
}

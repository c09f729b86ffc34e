// Pools, their groups (static or SRV sources, shares) and health checks.

extension ConfigValidator {
    static let retriesRange = 0...10
    static let weightRange = 1...256
    static let slotsRange = 1...4096
    static let riseFallRange = 1...100
    static let expectRange = 100...599
    static let defaultSlots = 16
    static let defaultMaxUnhealthy = Share(basisPoints: 3000)

    /// Validates one pool; `resolverNames` are the resolvers defined in the file (nil if that section
    /// was malformed), for SRV groups.
    mutating func validatePool(
        _ entry: RawEntry<RawPool>, at path: ConfigPath, resolverNames: [String]?
    ) -> PoolConfig {
        name(entry.name, at: path)
        let raw = entry.value
        let algorithms: [BalanceAlgorithm] = [.roundRobin, .leastLoaded]
        let balance = raw.balance.flatMap {
            choice($0, at: path.key("balance"), what: "balance algorithm", among: algorithms)
        }
        let maxUnhealthy = raw.maxUnhealthy.flatMap { share($0, at: path.key("max_unhealthy")) }
        let retries = int(raw.retries, at: path.key("retries"), in: Self.retriesRange, default: 2)
        let groups = validateGroups(raw.groups, at: path.key("groups"), resolverNames: resolverNames)
        let health = raw.health.map { validateHealth($0, at: path.key("health")) }
        var pool = PoolConfig(
            name: entry.name, balance: balance ?? .roundRobin, maxUnhealthy: maxUnhealthy ?? Self.defaultMaxUnhealthy,
            retries: retries ?? 2, groups: groups, health: health)
        if let rawPassive = raw.passive { pool.passive = validatePassive(rawPassive, at: path.key("passive")) }
        if let text = raw.slowStart, parseDuration(text) != .zero,  // `0s` means off
            let d = duration(text, at: path.key("slow_start"), default: .zero)
        {
            pool.slowStart = d
        }
        if let text = raw.retryBudget, let budget = share(text, at: path.key("retry_budget")) {
            pool.retryBudget = budget
        }
        if let hooks = raw.hooks, let command = hooks.command {
            if command.trimmingPrefix(while: { $0 == " " }).isEmpty {
                problems.add(path.key("hooks").key("command"), "must not be empty")
            }
            let interval = duration(hooks.minInterval, at: path.key("hooks").key("min_interval"), default: .seconds(1))
            pool.hooks = HookConfig(command: command, minInterval: interval ?? .seconds(1))
        }
        return pool
    }

    private mutating func validatePassive(_ raw: RawPassive, at path: ConfigPath) -> PassiveConfig {
        var p = PassiveConfig()
        p.failures = int(raw.failures, at: path.key("failures"), in: Self.riseFallRange, default: p.failures) ?? p.failures
        p.ejection = duration(raw.ejection, at: path.key("ejection"), default: p.ejection) ?? p.ejection
        p.maxEjection = duration(raw.maxEjection, at: path.key("max_ejection"), default: p.maxEjection) ?? p.maxEjection
        p.resetAfter = duration(raw.resetAfter, at: path.key("reset_after"), default: p.resetAfter) ?? p.resetAfter
        if let text = raw.backoff {
            p.backoff = choice(text, at: path.key("backoff"), what: "backoff", among: PassiveConfig.Backoff.allCases)
                ?? p.backoff
        }
        p.on5xx = raw.on5xx ?? p.on5xx
        if p.maxEjection < p.ejection {
            problems.add(path.key("max_ejection"), "\(p.maxEjection) must not be less than ejection \(p.ejection)")
        }
        return p
    }

    /// Validates a pool's groups in file order, the sum of their shares, and that no backend address
    /// appears twice in the pool (across groups too).
    private mutating func validateGroups(
        _ raw: [RawEntry<RawGroup>]?, at path: ConfigPath, resolverNames: [String]?
    ) -> [GroupConfig] {
        guard let raw else { return [] }
        if raw.isEmpty {
            problems.add(path, "at least one group is required")
        }
        var groups: [GroupConfig] = []
        var shares: [Share?] = []
        var firstUse: [SocketAddress: ConfigPath] = [:]
        for entry in raw {
            let groupPath = path.key(entry.name)
            name(entry.name, at: groupPath)
            let groupShare = entry.value.share.flatMap { share($0, at: groupPath.key("share")) }
            shares.append(groupShare)
            let source: GroupSource?
            switch entry.value.source {
            case .staticBackends(let backends):
                source = validateStatic(backends, at: groupPath.key("static"), firstUse: &firstUse)
            case .srv(let srvName, let resolver, let slots):
                source = validateSRV(
                    name: srvName, resolver: resolver, slots: slots, at: groupPath, resolverNames: resolverNames)
            case nil:
                source = nil
            }
            let tls = entry.value.tls.map { validateBackendTLS($0, at: groupPath.key("tls")) }
            if let groupShare, let source {
                groups.append(GroupConfig(name: entry.name, share: groupShare, source: source, tls: tls))
            }
        }
        // Only a sum of shares that all parsed means anything.
        let parsed = shares.compactMap { $0 }
        if !raw.isEmpty, parsed.count == raw.count {
            let total = Share(basisPoints: parsed.reduce(0) { $0 + $1.basisPoints })
            if total.basisPoints != 10_000 {
                problems.add(path, "group shares add up to \(total.percentText); they must add up to 100%")
            }
        }
        return groups
    }

    private mutating func validateBackendTLS(_ raw: RawBackendTLS, at path: ConfigPath) -> BackendTLSConfig {
        if (raw.cert == nil) != (raw.key == nil) {
            problems.add(path.key(raw.cert == nil ? "cert" : "key"), "a client certificate needs both cert and key")
        }
        if let name = raw.serverName, !isDNSName(name) {
            problems.add(path.key("server_name"), "'\(name)' is not a DNS name")
        }
        return BackendTLSConfig(
            caFile: raw.caFile.flatMap { filePath($0, at: path.key("ca_file")) },
            serverName: raw.serverName, verify: raw.verify ?? true,
            cert: raw.cert.flatMap { filePath($0, at: path.key("cert")) },
            key: raw.key.flatMap { filePath($0, at: path.key("key")) })
    }

    private mutating func validateStatic(
        _ raw: [RawBackend], at path: ConfigPath, firstUse: inout [SocketAddress: ConfigPath]
    ) -> GroupSource {
        if raw.isEmpty {
            problems.add(path, "at least one backend is required")
        }
        var backends: [BackendConfig] = []
        for (index, backend) in raw.enumerated() {
            let itemPath = path.index(index)
            let addressPath = backend.isBareAddress ? itemPath : itemPath.key("address")
            let weight = int(backend.weight, at: itemPath.key("weight"), in: Self.weightRange, default: 1)
            guard let text = backend.address, let address = address(text, at: addressPath) else { continue }
            if let first = firstUse[address] {
                problems.add(addressPath, "\(address) is already listed at \(first) in this pool")
            } else {
                firstUse[address] = addressPath
            }
            backends.append(BackendConfig(address: address, weight: weight ?? 1))
        }
        return .staticBackends(backends)
    }

    private mutating func validateSRV(
        name: String, resolver: String?, slots: Int?, at path: ConfigPath, resolverNames: [String]?
    ) -> GroupSource {
        if !isDNSName(name) {
            problems.add(path.key("srv"), "'\(name)' is not a DNS name, e.g. _web._tcp.service.consul")
        }
        if let resolver {
            reference(resolver, at: path.key("resolver"), kind: "resolver", defined: resolverNames)
        }
        let slots = int(slots, at: path.key("slots"), in: Self.slotsRange, default: Self.defaultSlots)
        return .srv(name: name, resolver: resolver ?? "", slots: slots ?? Self.defaultSlots)
    }

    private mutating func validateHealth(_ raw: RawHealth, at path: ConfigPath) -> HealthConfig {
        let interval = duration(raw.interval, at: path.key("interval"), default: .seconds(2))
        let timeout = duration(raw.timeout, at: path.key("timeout"), default: .seconds(1))
        if let interval, let timeout, timeout >= interval {
            let intervalText = raw.interval ?? "2s (default)"
            let timeoutText = raw.timeout ?? "1s (default)"
            problems.add(path.key("timeout"), "\(timeoutText) must be less than interval \(intervalText)")
        }
        let rise = int(raw.rise, at: path.key("rise"), in: Self.riseFallRange, default: 2)
        let fall = int(raw.fall, at: path.key("fall"), in: Self.riseFallRange, default: 3)
        var check = HealthConfig.Check.tcp
        if case .http(let rawPath, let rawExpect) = raw.check {
            let httpPath = path.key("http")
            let requestPath = rawPath ?? "/"
            if !isRequestTarget(requestPath) {
                problems.add(
                    httpPath.key("path"),
                    "'\(requestPath)' is not a request path; it must start with '/' and have no spaces or controls")
            }
            let expect = int(rawExpect, at: httpPath.key("expect"), in: Self.expectRange, default: 200)
            check = .http(path: requestPath, expect: expect ?? 200)
        }
        return HealthConfig(
            check: check, interval: interval ?? .seconds(2), timeout: timeout ?? .seconds(1), rise: rise ?? 2,
            fall: fall ?? 3)
    }
}

/// A DNS name as SRV queries use it: dot-separated labels of 1...63 letters, digits, `_` or `-`,
/// at most 253 characters, an optional trailing dot.
private func isDNSName(_ name: String) -> Bool {
    let trimmed = name.hasSuffix(".") ? name.dropLast() : Substring(name)
    guard (1...253).contains(trimmed.utf8.count) else { return false }
    return trimmed.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
        (1...63).contains(label.utf8.count)
            && label.unicodeScalars.allSatisfy { scalar in
                switch scalar {
                case "A"..."Z", "a"..."z", "0"..."9", "_", "-": true
                default: false
                }
            }
    }
}

/// An origin-form request target: starts with `/`, visible ASCII only (no spaces or controls).
private func isRequestTarget(_ text: String) -> Bool {
    text.hasPrefix("/") && text.unicodeScalars.allSatisfy { (0x21...0x7E).contains($0.value) }
}

extension ConfigValidator {
    /// A group source given through the admin API, checked by the same rules as the file's:
    /// addresses, weights, slots, the SRV name and its resolver, and that no address is already
    /// listed by another static group of the pool. Problems are named by path under `at`.
    static func validateSource(
        _ raw: RawGroupSource, group: String, in pool: PoolConfig, resolverNames: [String], at path: ConfigPath
    ) -> (source: GroupSource?, problems: [ConfigProblem]) {
        var validator = ConfigValidator(defaultWorkers: 1)
        var firstUse: [SocketAddress: ConfigPath] = [:]
        for other in pool.groups where other.name != group {
            if case .staticBackends(let list) = other.source {
                for b in list { firstUse[b.address] = ConfigPath.root.key("groups").key(other.name) }
            }
        }
        let source: GroupSource
        switch raw {
        case .staticBackends(let list):
            source = validator.validateStatic(list, at: path.key("static"), firstUse: &firstUse)
        case .srv(let name, let resolver, let slots):
            source = validator.validateSRV(name: name, resolver: resolver, slots: slots, at: path, resolverNames: resolverNames)
        }
        let problems = validator.problems.problems
        return (problems.isEmpty ? source : nil, problems)
    }
}

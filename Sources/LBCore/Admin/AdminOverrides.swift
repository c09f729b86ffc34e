// Runtime changes made through the admin API, kept apart from the file's config so both survive
// each other: a reload re-reads the file and keeps every override whose setting the file did not
// change; a restart restores them from the state file. Overrides never add a backend: a weight or
// admin state for an address applies only while that address is a member (from the file or from
// discovery), so a restored override cannot bring back an address discovery no longer lists.
// Pure value type.

/// A backend's admin state: `ready` serves; `drain` takes no new requests (in flight finish, checks
/// go on); `maint` is like drain with checks stopped, and must pass them again when it returns.
public enum AdminState: String, Codable, Sendable, CaseIterable {
    case ready
    case drain
    case maint
}

struct BackendOverride: Codable, Equatable, Sendable {
    var weight: Int?
    var state: AdminState?
}

/// A group source as the state file stores it: exactly one of `srv` and `static`.
struct SourceOverride: Codable, Equatable, Sendable {
    struct StaticBackend: Codable, Equatable, Sendable {
        var host: String
        var port: UInt16
        var weight: Int
    }
    var srv: String?
    var resolver: String?
    var slots: Int?
    var `static`: [StaticBackend]?

    init(_ source: GroupSource) {
        switch source {
        case .srv(let name, let resolver, let slots):
            srv = name
            self.resolver = resolver
            self.slots = slots
        case .staticBackends(let list):
            `static` = list.map { StaticBackend(host: $0.address.host, port: $0.address.port, weight: $0.weight) }
        }
    }

    var source: GroupSource? {
        if let srv, let resolver, let slots { return .srv(name: srv, resolver: resolver, slots: slots) }
        if let list = `static` {
            return .staticBackends(list.map {
                BackendConfig(address: SocketAddress(host: $0.host, port: $0.port), weight: $0.weight)
            })
        }
        return nil
    }
}

struct GroupOverride: Codable, Equatable, Sendable {
    /// Basis points.
    var share: Int?
    var source: SourceOverride?
}

/// Why an admin change cannot apply; `status` is the HTTP status the API answers with.
struct AdminChangeError: Error, Equatable {
    var status: Int
    var message: String
}

struct AdminOverrides: Codable, Equatable, Sendable {
    /// Pool name → backend address text (`host:port`, IPv6 in brackets) → override.
    var backends: [String: [String: BackendOverride]] = [:]
    /// Pool name → group name → override.
    var groups: [String: [String: GroupOverride]] = [:]
    /// Pool name → the group promoted last (what `revert` undoes by default).
    var promoted: [String: String] = [:]
    /// The file's settings when these were saved (nil in memory; set when written).
    var basis: [PoolBasis]?

    var isEmpty: Bool { backends.isEmpty && groups.isEmpty && promoted.isEmpty }

    func backend(pool: String, address: SocketAddress) -> BackendOverride? {
        backends[pool]?[address.description]
    }

    // MARK: applying

    /// The file's config with the group overrides (shares, sources) in place. A pool whose share
    /// overrides no longer add up to 100% (they are written whole, so only a hand-edited state file
    /// does that) keeps the file's shares; each such case is returned as a problem.
    func applied(to file: LBConfig) -> (config: LBConfig, problems: [String]) {
        var config = file
        var problems: [String] = []
        for pi in config.pools.indices {
            let pool = config.pools[pi]
            guard let overrides = groups[pool.name] else { continue }
            var shares = pool.groups.map(\.share.basisPoints)
            var sharesOverridden = false
            for (gi, group) in pool.groups.enumerated() {
                guard let o = overrides[group.name] else { continue }
                if let share = o.share {
                    shares[gi] = share
                    sharesOverridden = true
                }
                if let source = o.source?.source { config.pools[pi].groups[gi].source = source }
            }
            if sharesOverridden {
                if shares.reduce(0, +) == 10_000 && shares.allSatisfy({ (0...10_000).contains($0) }) {
                    for gi in shares.indices { config.pools[pi].groups[gi].share = Share(basisPoints: shares[gi]) }
                } else {
                    problems.append("pools.\(pool.name): saved shares do not add up to 100%; using the file's")
                }
            }
        }
        return (config, problems)
    }

    // MARK: changes (each checks the whole change before making it)

    /// Gives `group` exactly `basisPoints`; the pool's other groups are rescaled to fill the rest,
    /// in proportion to their current shares (equally when those are all 0).
    mutating func setShare(_ basisPoints: Int, group: String, in pool: PoolConfig) throws(AdminChangeError) {
        guard let gi = pool.groups.firstIndex(where: { $0.name == group }) else {
            throw AdminChangeError(status: 404, message: "pool \(pool.name) has no group \(group)")
        }
        guard (0...10_000).contains(basisPoints) else {
            throw AdminChangeError(status: 400, message: "share must be within 0...100")
        }
        let others = pool.groups.indices.filter { $0 != gi }
        if others.isEmpty && basisPoints != 10_000 {
            throw AdminChangeError(status: 409, message: "\(group) is the only group of \(pool.name); its share is 100%")
        }
        let current = others.map { pool.groups[$0].share.basisPoints }
        let rest = Self.spread(10_000 - basisPoints, over: current)
        var shares = Array(repeating: 0, count: pool.groups.count)
        shares[gi] = basisPoints
        for (k, oi) in others.enumerated() { shares[oi] = rest[k] }
        setShares(shares, in: pool)
    }

    /// `group` takes the whole share; the others get 0 and drain.
    mutating func promote(group: String, in pool: PoolConfig) throws(AdminChangeError) {
        try setShare(10_000, group: group, in: pool)
        promoted[pool.name] = group
    }

    /// `group` (default: the one promoted last) goes back to 0; the others get their shares from
    /// the file, rescaled to fill 100%.
    mutating func revert(group: String?, in pool: PoolConfig, file: PoolConfig) throws(AdminChangeError) {
        guard let name = group ?? promoted[pool.name] else {
            throw AdminChangeError(status: 409, message: "nothing was promoted in \(pool.name); name the group to revert: {\"group\": \"canary\"}")
        }
        guard let gi = pool.groups.firstIndex(where: { $0.name == name }) else {
            throw AdminChangeError(status: 404, message: "pool \(pool.name) has no group \(name)")
        }
        let others = pool.groups.indices.filter { $0 != gi }
        guard !others.isEmpty else {
            throw AdminChangeError(status: 409, message: "\(name) is the only group of \(pool.name); there is nothing to revert to")
        }
        let configured = others.map { oi in
            file.groups.first { $0.name == pool.groups[oi].name }?.share.basisPoints ?? 0
        }
        let rest = Self.spread(10_000, over: configured)
        var shares = Array(repeating: 0, count: pool.groups.count)
        for (k, oi) in others.enumerated() { shares[oi] = rest[k] }
        setShares(shares, in: pool)
        promoted[pool.name] = nil
    }

    mutating func setSource(_ source: GroupSource, group: String, in pool: PoolConfig) {
        groups[pool.name, default: [:]][group, default: GroupOverride()].source = SourceOverride(source)
    }

    mutating func setBackend(pool: String, address: SocketAddress, weight: Int?, state: AdminState?) {
        var o = backends[pool]?[address.description] ?? BackendOverride()
        if let weight { o.weight = weight }
        if let state { o.state = state == .ready ? nil : state }
        backends[pool, default: [:]][address.description] = (o.weight == nil && o.state == nil) ? nil : o
        if backends[pool]?.isEmpty == true { backends[pool] = nil }
    }

    private mutating func setShares(_ shares: [Int], in pool: PoolConfig) {
        for (gi, group) in pool.groups.enumerated() {
            groups[pool.name, default: [:]][group.name, default: GroupOverride()].share = shares[gi]
        }
    }

    /// Splits `total` basis points in proportion to `weights` (equally when they are all 0),
    /// largest remainders first, so the parts add up to `total` exactly.
    static func spread(_ total: Int, over weights: [Int]) -> [Int] {
        guard !weights.isEmpty else { return [] }
        let w = weights.allSatisfy { $0 <= 0 } ? weights.map { _ in 1 } : weights.map { max(0, $0) }
        let sum = w.reduce(0, +)
        var parts = w.map { total * $0 / sum }
        var left = total - parts.reduce(0, +)
        let byRemainder = w.indices.sorted { (total * w[$0]) % sum > (total * w[$1]) % sum }
        for i in byRemainder where left > 0 {
            parts[i] += 1
            left -= 1
        }
        return parts
    }

    // MARK: reload and restart

    /// Keeps the overrides a change of the file from `old` to `new` leaves alone: a pool's shares
    /// are dropped when the file changed any of its groups' shares or its set of groups; a group's
    /// source when the file changed that source; a backend's weight when the file changed that
    /// static backend's weight. Admin states have no file setting and always stay. Used on reload,
    /// and at start against the file the overrides were saved with (`basis`). Returns a line per
    /// dropped override.
    mutating func reconcile(old: [PoolBasis], new: [PoolBasis]) -> [String] {
        var dropped: [String] = []
        for poolName in Set(groups.keys).union(backends.keys).union(promoted.keys).sorted() {
            guard let newPool = new.first(where: { $0.name == poolName }),
                  let oldPool = old.first(where: { $0.name == poolName }) else {
                groups[poolName] = nil
                backends[poolName] = nil
                promoted[poolName] = nil
                dropped.append("pools.\(poolName): the pool is gone")
                continue
            }
            if var pool = groups[poolName] {
                let oldShares = oldPool.groups.map { [$0.name: $0.share] }
                let newShares = newPool.groups.map { [$0.name: $0.share] }
                if oldShares != newShares, pool.values.contains(where: { $0.share != nil }) {
                    for name in pool.keys { pool[name]?.share = nil }
                    promoted[poolName] = nil
                    dropped.append("pools.\(poolName): shares (the file changed them)")
                }
                for name in pool.keys.sorted() {
                    let oldGroup = oldPool.groups.first { $0.name == name }
                    let newGroup = newPool.groups.first { $0.name == name }
                    if newGroup == nil {
                        pool[name] = nil
                        dropped.append("pools.\(poolName).groups.\(name): the group is gone")
                    } else if pool[name]?.source != nil, oldGroup?.source != newGroup?.source {
                        pool[name]?.source = nil
                        dropped.append("pools.\(poolName).groups.\(name): source (the file changed it)")
                    }
                    if pool[name] == GroupOverride() { pool[name] = nil }
                }
                groups[poolName] = pool.isEmpty ? nil : pool
            }
            if var list = backends[poolName] {
                let oldWeights = oldPool.staticWeights
                let newWeights = newPool.staticWeights
                for key in list.keys.sorted() where list[key]?.weight != nil && oldWeights[key] != newWeights[key] {
                    list[key]?.weight = nil
                    dropped.append("pools.\(poolName) backend \(key): weight (the file changed it)")
                    if list[key] == BackendOverride() { list[key] = nil }
                }
                backends[poolName] = list.isEmpty ? nil : list
            }
            if let p = promoted[poolName], !newPool.groups.contains(where: { $0.name == p }) { promoted[poolName] = nil }
        }
        return dropped
    }
}

/// The file's settings that overrides can shadow, per pool: saved with the overrides, so a start
/// with a changed file drops the overrides of what changed, as a reload does.
struct PoolBasis: Codable, Equatable, Sendable {
    struct Group: Codable, Equatable, Sendable {
        var name: String
        var share: Int
        var source: SourceOverride
    }
    var name: String
    var groups: [Group]

    init(_ pool: PoolConfig) {
        name = pool.name
        groups = pool.groups.map { Group(name: $0.name, share: $0.share.basisPoints, source: SourceOverride($0.source)) }
    }

    static func of(_ config: LBConfig) -> [PoolBasis] { config.pools.map(PoolBasis.init) }

    var staticWeights: [String: Int] {
        var out: [String: Int] = [:]
        for g in groups {
            for b in g.source.static ?? [] { out[SocketAddress(host: b.host, port: b.port).description] = b.weight }
        }
        return out
    }
}

// Worker-local picking state for one pool: a smooth WRR over the groups by share (exact
// percentages whatever each group's size), then the pool's algorithm over the group's members.
// Rebuilt when a new snapshot arrives; never shared between threads.

/// Picks a backend of one pool. Loop-local.
struct PoolPicker {
    let pool: PoolSnapshot
    private var groupPicker: SmoothWeightedRoundRobin
    private var roundRobin: [SmoothWeightedRoundRobin]
    private var leastLoaded: [LeastLoaded]

    init(pool: PoolSnapshot, seed: UInt64) {
        self.pool = pool
        groupPicker = SmoothWeightedRoundRobin(weights: pool.groups.map { $0.share.basisPoints })
        roundRobin = pool.groups.map { SmoothWeightedRoundRobin(weights: $0.members.map(\.weight)) }
        var s = SplitMix64(seed: seed)
        leastLoaded = pool.groups.map { LeastLoaded(weights: $0.members.map(\.weight), seed: s.next()) }
    }

    /// A backend not in `excluded` (ids), or nil when the pool has none usable.
    mutating func pick(excluding excluded: [Int] = []) -> Backend? {
        pickMember(excluding: excluded)?.member.backend
    }

    /// Like `pick`, with the member (its weight and traffic stats) and its group.
    mutating func pickMember(excluding excluded: [Int] = []) -> (member: GroupMember, group: GroupSnapshot)? {
        let groups = pool.groups
        func usable(_ m: GroupMember) -> Bool { !excluded.contains(m.backend.id) }
        let g = groupPicker.next { gi in groups[gi].members.contains(where: usable) }
        guard let gi = g else { return nil }
        let members = groups[gi].members
        let mi: Int?
        switch pool.balance {
        case .roundRobin:
            mi = roundRobin[gi].next { excluded.isEmpty || usable(members[$0]) }
        case .leastLoaded:
            mi = leastLoaded[gi].next(
                isEligible: { excluded.isEmpty || usable(members[$0]) },
                inFlight: { members[$0].backend.inFlight.load(ordering: .relaxed) })
        }
        return mi.map { (members[$0], groups[gi]) }
    }
}

// Immutable pool state published by the control loop to every worker (DESIGN.md section 3).
// A worker loads a new `RuntimeSnapshot` when its doorbell rings and keeps a loop-local copy, so a
// request always sees one whole snapshot. Backends are interned by address across snapshots
// (`BackendRegistry`), so a worker's idle upstream connections and the shared in-flight counters
// survive a republish.

import Synchronization

/// One backend address. Shared by all workers; only `inFlight` changes, atomically.
public final class Backend: Sendable {
    /// Process-wide unique, stable for the address's lifetime in the registry.
    public let id: Int
    public let address: SocketAddress
    public let sockaddr: SockAddr
    /// Requests in flight on this backend across all workers (least-loaded picking).
    public let inFlight = Atomic<Int>(0)
    /// Failures of live traffic since the last success, across workers; lets a worker skip
    /// reporting the (common) success that changes nothing.
    let failureStreak = Atomic<Int>(0)

    init(id: Int, address: SocketAddress, sockaddr: SockAddr) {
        self.id = id
        self.address = address
        self.sockaddr = sockaddr
    }
}

/// A backend as a member of a group: the shared `Backend` plus this group's weight for it.
public struct GroupMember: Sendable {
    public let backend: Backend
    public let weight: Int
    /// This member's traffic (labels: pool, group, backend).
    let stats: TrafficStats
    init(backend: Backend, weight: Int, stats: TrafficStats = TrafficStats()) {
        self.backend = backend
        self.weight = weight
        self.stats = stats
    }
}

public final class GroupSnapshot: Sendable {
    public let name: String
    public let share: Share
    public let members: [GroupMember]
    let stats: TrafficStats
    init(name: String, share: Share, members: [GroupMember], stats: TrafficStats = TrafficStats()) {
        self.name = name
        self.share = share
        self.members = members
        self.stats = stats
    }
}

public final class PoolSnapshot: Sendable {
    public let name: String
    public let balance: BalanceAlgorithm
    public let retries: Int
    public let groups: [GroupSnapshot]
    let stats: TrafficStats
    init(name: String, balance: BalanceAlgorithm, retries: Int, groups: [GroupSnapshot], stats: TrafficStats = TrafficStats()) {
        self.name = name
        self.balance = balance
        self.retries = retries
        self.groups = groups
        self.stats = stats
    }
}

/// Everything a worker needs to route, published as one value.
public final class RuntimeSnapshot: Sendable {
    public let generation: UInt64
    /// Indexed like `LBConfig.pools`.
    public let pools: [PoolSnapshot]
    init(generation: UInt64, pools: [PoolSnapshot]) {
        self.generation = generation
        self.pools = pools
    }
    public func poolIndex(named name: String) -> Int? { pools.firstIndex { $0.name == name } }
}

/// Interns `Backend` objects by address. Control loop only.
final class BackendRegistry {
    private var byAddress: [SocketAddress: Backend] = [:]
    private var nextID = 0

    func backend(for address: SocketAddress) -> Backend? {
        if let b = byAddress[address] { return b }
        guard let sa = SockAddr(address) else { return nil }
        let b = Backend(id: nextID, address: address, sockaddr: sa)
        nextID += 1
        byAddress[address] = b
        return b
    }

    /// Forgets every backend whose id is not in `ids` (discovery removed it for good), so a pool
    /// that churns through addresses keeps a flat registry. Workers still holding one finish with it.
    func retain(only ids: Set<Int>) {
        byAddress = byAddress.filter { ids.contains($0.value.id) }
    }
}

/// The current snapshot and its generation, written by the control loop, read by workers on a doorbell.
final class SnapshotStore: Sendable {
    private let current: Locked<RuntimeSnapshot>
    let generation = Atomic<UInt64>(0)

    init(_ initial: RuntimeSnapshot) {
        current = Locked(initial)
        generation.store(initial.generation, ordering: .releasing)
    }

    func load() -> RuntimeSnapshot { current.withLock { $0 } }

    func publish(_ snapshot: RuntimeSnapshot) {
        current.withLock { $0 = snapshot }
        generation.store(snapshot.generation, ordering: .releasing)
    }
}

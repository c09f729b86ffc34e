// Discovery for every SRV group, on the control loop: one `DNSClient` per resolver, one
// `SRVGroupDiscovery` per SRV group. A group's change becomes new members in the health monitor
// (which republishes the snapshot) and a new state file, whose last good sets are restored at
// start so a restart while DNS is down serves at once (after the members pass their checks).
// Control thread only.

import CLibevent
import DNSResolver
import Logging

final class Discovery {
    private let base: OpaquePointer
    private let monitor: HealthMonitor
    private let registry: BackendRegistry
    private let logger: Logger
    private let store: StateStore
    /// A resolver's DNS client, remembered with the settings it was made for.
    private struct ResolverClient {
        let resolver: ResolverConfig
        let client: DNSClient
    }
    private var clients: [String: ResolverClient] = [:]
    private(set) var groups: [SRVGroupDiscovery] = []

    /// Per resolver: DNS replies its queries dropped (malformed, or not answering the question).
    func droppedReplies() -> [(resolver: String, count: Int)] {
        clients.sorted { $0.key < $1.key }.map { ($0.key, $0.value.client.droppedReplies) }
    }

    init(
        base: OpaquePointer, config: LBConfig, monitor: HealthMonitor, registry: BackendRegistry, store: StateStore,
        logger: Logger
    ) {
        self.base = base
        self.monitor = monitor
        self.registry = registry
        self.store = store
        self.logger = logger
        groups = makeGroups(config, saved: store.state, keeping: [])
        for g in groups where !g.records.isEmpty {
            logger.notice(
                "restored the last good set from the state file",
                metadata: ["pool": "\(g.poolName)", "group": "\(g.groupName)", "members": "\(g.records.count)"])
            apply(g)
        }
    }

    /// One discovery per SRV group of `config`; a group in `keeping` whose source and resolver
    /// are unchanged is reused (it keeps its slots and schedule), the others are new.
    private func makeGroups(
        _ config: LBConfig, saved: PersistedState, keeping old: [SRVGroupDiscovery]
    ) -> [SRVGroupDiscovery] {
        var made: [SRVGroupDiscovery] = []
        for (pi, pool) in config.pools.enumerated() {
            for (gi, group) in pool.groups.enumerated() {
                guard case .srv(let name, let resolverName, let slots) = group.source,
                      let resolver = config.resolvers.first(where: { $0.name == resolverName }) else { continue }
                if let same = old.first(where: {
                    $0.poolName == pool.name && $0.groupName == group.name && $0.srvName == name
                        && $0.resolver == resolver && $0.slots.slots.count == slots
                }) {
                    same.group = gi
                    made.append(same)
                    continue
                }
                let client = clients[resolverName].flatMap { $0.resolver == resolver ? $0 : nil } ?? {
                    let c = ResolverClient(
                        resolver: resolver,
                        client: DNSClient(base: base, nameservers: resolver.nameservers.map { (host: $0.host, port: $0.port) }))
                    clients[resolverName] = c
                    return c
                }()
                var restoring: [(index: Int, record: TemplateRecord)] = []
                if let persisted = saved.discovery["\(pool.name)/\(group.name)"], persisted.srv == name {
                    restoring = persisted.slots.map {
                        ($0.slot, TemplateRecord(
                            key: TemplateKey(target: $0.target, port: $0.port),
                            address: SocketAddress(host: $0.host, port: $0.port), weight: $0.weight,
                            priority: $0.priority))
                    }
                }
                let g = SRVGroupDiscovery(
                    pool: pi, group: gi, poolName: pool.name, groupName: group.name, srvName: name, slots: slots,
                    maxRemoval: pool.maxUnhealthy, resolver: resolver, client: client.client, logger: logger,
                    restoring: restoring)
                g.onChange = { [unowned self] g in self.changed(g) }
                made.append(g)
            }
        }
        return made
    }

    /// Applies a reloaded config (same pools as before, checked by the caller): unchanged SRV
    /// groups keep running; new or swapped ones start resolving, and their first set replaces the
    /// old members make-before-break.
    func reconfigure(_ new: LBConfig) {
        let old = groups
        groups = makeGroups(new, saved: PersistedState(), keeping: old)
        for g in old where !groups.contains(where: { $0 === g }) { g.stop() }
        for g in groups where !old.contains(where: { $0 === g }) { g.start(base: base) }
        save()
    }

    /// Sends the first queries; answers arrive once the control loop runs.
    func start(base: OpaquePointer) {
        for g in groups { g.start(base: base) }
    }

    func stop() {
        for g in groups { g.stop() }
    }

    private func changed(_ g: SRVGroupDiscovery) {
        apply(g)
        save()
    }

    private func apply(_ g: SRVGroupDiscovery) {
        let entries = g.records.compactMap { r in
            registry.backend(for: r.address).map {
                // SRV weight 0 ("very small chance", RFC 2782) would never be picked: it counts as 1.
                HealthMonitor.GroupEntry(backend: $0, weight: max(1, r.weight), priority: r.priority)
            }
        }
        // Make before break: members that left the answer go at once while others can serve, but
        // a replacement whose new members have not passed their checks yet never empties the group.
        monitor.replaceMembers(pool: g.pool, group: g.group, with: entries, makeBeforeBreak: true)
    }

    private func save() {
        guard store.isPersistent else { return }
        store.state.discovery = [:]
        for g in groups {
            store.state.discovery["\(g.poolName)/\(g.groupName)"] = PersistedGroup(
                srv: g.srvName,
                slots: g.slots.present.map {
                    PersistedSlot(
                        slot: $0.index, target: $0.record.key.target, port: $0.record.key.port,
                        host: $0.record.address.host, weight: $0.record.weight, priority: $0.record.priority)
                })
        }
        store.save()
    }
}

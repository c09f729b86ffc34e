// The control loop's view of every backend's health, and what decides rotation.
//
// Per pool member it keeps an `ActiveHealth` machine (when the pool has `health:`) fed by
// `HealthProbe`s, and a `PassiveHealth` machine fed by `HealthReports` from the workers. Every
// 100 ms (and after any report or probe) it recomputes which members are in rotation: a member
// that never passed its checks is out; of the others, those failing checks or ejected want out, and
// `RotationCap` lets at most `max_unhealthy` of a group go. A change publishes a new snapshot that
// holds only in-rotation members, with slow-start weights, and rings every worker.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging
import Prometheus

final class HealthMonitor {
    private struct MemberKey: Hashable {
        let pool: Int
        let backend: Int
    }

    private final class Member {
        let backend: Backend
        let pool: Int
        var group: Int
        /// The weight its source gives it; `weight` is this or the admin override.
        var sourceWeight: Int
        var weight: Int
        /// The admin state (ready, drain, maint) set through the admin API.
        var admin = AdminState.ready
        /// No longer listed by its group's source after a reload or a source swap; serves only
        /// until a member of the new source is usable (make before break).
        var leaving = false
        var priority = 0
        var active: ActiveHealth?
        var passive: PassiveHealth
        /// Passed its checks at least once (always true without active checks).
        var everUp: Bool
        /// When it last came (back) into rotation, for slow start.
        var upSince: MonotonicInstant
        var nextProbe: MonotonicInstant
        /// Probes in flight (at most two: the scheduled one and its hedge), by serial.
        var probes: [Int: (probe: HealthProbe, started: MonotonicInstant)] = [:]
        var inRotation = false
        var effectiveWeight = 0
        /// When the current ejection began, and the active checks passed since then.
        var ejectedAt = MonotonicInstant(nanoseconds: 0)
        var successesSinceEjection = 0
        var label = "new"
        /// Its traffic, for /metrics and /v1/pools; the histogram leaves /metrics with the member.
        let stats: TrafficStats

        init(backend: Backend, pool: Int, group: Int, weight: Int, active: ActiveHealth?, passive: PassiveHealth,
             now: MonotonicInstant, stats: TrafficStats) {
            self.stats = stats
            self.backend = backend
            self.pool = pool
            self.group = group
            self.sourceWeight = weight
            self.weight = weight
            self.active = active
            self.passive = passive
            self.everUp = active == nil
            self.upSince = now
            self.nextProbe = now
        }

        deinit { stats.unregister() }
    }

    /// A member as the group's source (static list or discovery) gives it.
    struct GroupEntry {
        let backend: Backend
        let weight: Int
        /// SRV priority: the lowest value present is primary; higher ones are backups, in rotation
        /// only while no primary is. Static members are all 0.
        let priority: Int
    }

    private let base: OpaquePointer
    private var config: LBConfig
    private let registry: BackendRegistry
    /// TLS for a pool's group ("pool", "group"), for checks of backends that speak TLS.
    var backendTLS: ((String, String) -> BackendTLS?)?
    private var seed: UInt64 = 0x4845_414C_5448
    private let logger: Logger
    private var members: [MemberKey: Member] = [:]
    /// Member keys per pool and group, in config order.
    private var layout: [[[MemberKey]]] = []
    private var cappedGroups: Set<[Int]> = []
    private var tick: OpaquePointer?
    /// One-shot timer for the earliest due probe or hedge, so probes start on time, not on the tick.
    private var probeTimer: OpaquePointer?
    private var probeSerial = 0
    private var doorbell: OpaquePointer?
    private(set) var reports: HealthReports?
    private var generation: UInt64 = 1
    /// Called with each new snapshot to publish.
    var publish: ((RuntimeSnapshot) -> Void)?
    private let hooks: HealthHooks
    /// Admin overrides of backends (weights, admin states); they apply to members only.
    private var overrides = AdminOverrides()
    /// Histograms for /metrics.
    let metrics = PrometheusCollectorRegistry()
    /// Traffic per group ("pool/group") and per pool, kept across snapshots.
    private var groupStats: [String: TrafficStats] = [:]
    private var poolStats: [String: TrafficStats] = [:]

    init(base: OpaquePointer, config: LBConfig, registry: BackendRegistry, logger: Logger, overrides: AdminOverrides = AdminOverrides()) {
        self.base = base
        self.config = config
        self.overrides = overrides
        self.registry = registry
        self.logger = logger
        hooks = HealthHooks(config: config, logger: logger)
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        layout = config.pools.map { pool in pool.groups.map { _ in [] } }
        for (pi, pool) in config.pools.enumerated() {
            for (gi, group) in pool.groups.enumerated() {
                guard case .staticBackends(let list) = group.source else { continue }
                let entries = list.compactMap { b in
                    registry.backend(for: b.address).map { GroupEntry(backend: $0, weight: b.weight, priority: 0) }
                }
                place(entries, pool: pi, group: gi, now: now)
            }
        }
        _ = evaluate(now: now, log: false)
    }

    deinit {
        if let t = tick { event_free(t) }
        if let t = probeTimer { event_free(t) }
        if let d = doorbell { event_free(d) }
    }

    /// Starts the tick and the report doorbell. Returns the queue workers report into.
    func start() -> HealthReports? {
        let me = Unmanaged.passUnretained(self).toOpaque()
        tick = event_new(base, -1, evs(EV_PERSIST), HealthMonitor.onTick, me)
        var tv = Duration.milliseconds(100).timeval
        if let t = tick { event_add(t, &tv) }
        probeTimer = event_new(base, -1, 0, HealthMonitor.onProbeTimer, me)
        doorbell = event_new(base, -1, 0, HealthMonitor.onReports, me)
        if let d = doorbell { reports = HealthReports(doorbell: d) }
        runDueProbes(now: MonotonicInstant(nanoseconds: monotonicNanos()))
        return reports
    }

    /// The snapshot for the current rotation.
    func snapshot() -> RuntimeSnapshot {
        let pools = config.pools.enumerated().map { pi, pool in
            PoolSnapshot(
                name: pool.name, balance: pool.balance, retries: pool.retries,
                groups: pool.groups.enumerated().map { gi, group in
                    let inRotation = layout[pi][gi].compactMap { members[$0] }.filter(\.inRotation)
                    return GroupSnapshot(
                        name: group.name, share: group.share,
                        members: inRotation.map { GroupMember(backend: $0.backend, weight: $0.effectiveWeight, stats: $0.stats) },
                        stats: stats(pool: pool.name, group: group.name))
                },
                stats: stats(pool: pool.name, group: nil))
        }
        return RuntimeSnapshot(generation: generation, pools: pools)
    }

    /// The traffic of a group, or of the pool when `group` is nil; made on first use.
    func stats(pool: String, group: String?) -> TrafficStats {
        if let group {
            if let s = groupStats["\(pool)/\(group)"] { return s }
            let s = TrafficStats(registry: metrics, level: "group", histogramLabels: [("pool", pool), ("group", group)])
            groupStats["\(pool)/\(group)"] = s
            return s
        }
        if let s = poolStats[pool] { return s }
        let s = TrafficStats(registry: metrics, level: "pool", histogramLabels: [("pool", pool)])
        poolStats[pool] = s
        return s
    }

    /// Sets a group's members (discovery calls this on every change). Members that stay keep
    /// their health state, probes and counters; new ones start down until they pass their checks
    /// (up at once without active checks); members no longer listed leave rotation now, while
    /// requests in flight on them finish. Republishes when rotation changed.
    /// With `makeBeforeBreak` (a reload or a swap of the group's source), members no longer listed
    /// keep serving until a listed one is usable, so a swap never leaves the group empty.
    func replaceMembers(pool pi: Int, group gi: Int, with entries: [GroupEntry], makeBeforeBreak: Bool = false) {
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        place(entries, pool: pi, group: gi, now: now, makeBeforeBreak: makeBeforeBreak)
        registry.retain(only: Set(members.values.map(\.backend.id)))
        reevaluate(now: now)
        runDueProbes(now: now)
    }

    private func place(
        _ entries: [GroupEntry], pool pi: Int, group gi: Int, now: MonotonicInstant, makeBeforeBreak: Bool = false
    ) {
        let pool = config.pools[pi]
        var keys: [MemberKey] = []
        for e in entries {
            let key = MemberKey(pool: pi, backend: e.backend.id)
            if let m = members[key] {
                guard m.group == gi else {
                    logger.warning(
                        "backend listed in two groups of one pool; kept in the first",
                        metadata: ["pool": "\(pool.name)", "backend": "\(e.backend.address)"])
                    continue
                }
                m.sourceWeight = e.weight
                m.priority = e.priority
                m.leaving = false
                applyOverride(m, now: now)
            } else {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let active = pool.health.map {
                    ActiveHealth(
                        settings: .init(interval: $0.interval, timeout: $0.timeout, rise: $0.rise, fall: $0.fall),
                        seed: seed)
                }
                let stats = TrafficStats(
                    registry: metrics, level: "backend",
                    histogramLabels: [("pool", pool.name), ("group", pool.groups[gi].name), ("backend", e.backend.address.description)])
                let m = Member(
                    backend: e.backend, pool: pi, group: gi, weight: e.weight, active: active,
                    passive: PassiveHealth(policy: pool.passive.policy), now: now, stats: stats)
                m.priority = e.priority
                applyOverride(m, now: now)
                // First probes right away (spread over 50 ms), so new members join fast.
                m.nextProbe = now + .milliseconds(Int64(seed % 50))
                members[key] = m
            }
            if !keys.contains(key) { keys.append(key) }
        }
        let kept = Set(keys)
        for old in layout[pi][gi] where !kept.contains(old) {
            if makeBeforeBreak, let m = members[old] {
                m.leaving = true
                keys.append(old)
            } else {
                // Dropping the member drops its probes too (their deinit closes the connections).
                members[old] = nil
            }
        }
        layout[pi][gi] = keys
    }

    /// Applies new admin overrides of backends (weights, admin states) and republishes.
    func setOverrides(_ new: AdminOverrides) {
        overrides = new
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        for m in members.values { applyOverride(m, now: now) }
        generation += 1
        _ = evaluate(now: now, log: true)
        publish?(snapshot())
        runDueProbes(now: now)
    }

    /// The member's weight and admin state from the overrides. A member leaving maintenance must
    /// pass its checks again before it serves, like a new one.
    private func applyOverride(_ m: Member, now: MonotonicInstant) {
        let o = overrides.backend(pool: config.pools[m.pool].name, address: m.backend.address)
        m.weight = o?.weight ?? m.sourceWeight
        let state = o?.state ?? .ready
        if m.admin == .maint && state != .maint, let health = config.pools[m.pool].health {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            m.active = ActiveHealth(
                settings: .init(interval: health.interval, timeout: health.timeout, rise: health.rise, fall: health.fall),
                seed: seed)
            m.everUp = false
            m.nextProbe = now
        }
        m.admin = state
    }

    /// Takes a reloaded config whose pools are the same, by name and order, as the running one
    /// (the caller checks). Groups are matched by name: a kept group keeps its members and their
    /// health; static groups get their new lists (make before break); SRV groups get theirs from
    /// discovery. Shares, health and ejection settings apply from now on.
    func reconfigure(_ new: LBConfig, overrides newOverrides: AdminOverrides? = nil) {
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        let old = config
        config = new
        if let newOverrides { overrides = newOverrides }
        var newLayout: [[[MemberKey]]] = []
        for (pi, pool) in new.pools.enumerated() {
            var groups: [[MemberKey]] = []
            for (gi, group) in pool.groups.enumerated() {
                let keys = old.pools[pi].groups.firstIndex { $0.name == group.name }.map { layout[pi][$0] } ?? []
                for key in keys { members[key]?.group = gi }
                groups.append(keys)
            }
            // Members of groups that are gone leave now.
            let keptKeys = Set(groups.joined())
            for keys in layout[pi] { for key in keys where !keptKeys.contains(key) { members[key] = nil } }
            newLayout.append(groups)
            if pool.health != old.pools[pi].health {
                for key in groups.joined() {
                    guard let m = members[key] else { continue }
                    seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    m.active = pool.health.map {
                        ActiveHealth(
                            settings: .init(interval: $0.interval, timeout: $0.timeout, rise: $0.rise, fall: $0.fall),
                            initial: m.active?.status ?? .up, seed: seed)
                    }
                    if m.active == nil { m.everUp = true }
                    m.nextProbe = now
                }
            }
        }
        layout = newLayout
        for m in members.values { applyOverride(m, now: now) }
        for (pi, pool) in new.pools.enumerated() {
            for (gi, group) in pool.groups.enumerated() {
                guard case .staticBackends(let list) = group.source else { continue }
                let entries = list.compactMap { b in
                    registry.backend(for: b.address).map { GroupEntry(backend: $0, weight: b.weight, priority: 0) }
                }
                place(entries, pool: pi, group: gi, now: now, makeBeforeBreak: true)
            }
        }
        registry.retain(only: Set(members.values.map(\.backend.id)))
        generation += 1
        _ = evaluate(now: now, log: true)
        publish?(snapshot())
        runDueProbes(now: now)
    }

    /// One member as the admin API shows it.
    struct MemberStatus {
        let address: SocketAddress
        let weight: Int
        let effectiveWeight: Int
        let inRotation: Bool
        /// up, standby, down, ejected, new.
        let state: String
        /// Active checks: up / down, or nil without checks.
        let checks: ActiveHealth.Status?
        let successes: Int
        let failures: Int
        let ejections: Int
        let inFlight: Int
        let leaving: Bool
        let admin: AdminState
        let stats: TrafficStats
    }

    /// Members by pool and group (config order), and whether each group is capped.
    func status() -> [[(members: [MemberStatus], capped: Bool)]] {
        var out: [[(members: [MemberStatus], capped: Bool)]] = []
        for (pi, groups) in layout.enumerated() {
            var row: [(members: [MemberStatus], capped: Bool)] = []
            for (gi, keys) in groups.enumerated() {
                var list: [MemberStatus] = []
                for key in keys {
                    guard let m = members[key] else { continue }
                    let successes: Int = m.active?.consecutiveSuccesses ?? 0
                    let failures: Int = m.active?.consecutiveFailures ?? 0
                    let inFlight: Int = m.backend.inFlight.load(ordering: .relaxed)
                    list.append(MemberStatus(
                        address: m.backend.address, weight: m.weight, effectiveWeight: m.effectiveWeight,
                        inRotation: m.inRotation, state: m.label, checks: m.active?.status,
                        successes: successes, failures: failures, ejections: m.passive.ejections,
                        inFlight: inFlight, leaving: m.leaving, admin: m.admin, stats: m.stats))
                }
                row.append((list, cappedGroups.contains([pi, gi])))
            }
            out.append(row)
        }
        return out
    }

    var currentConfig: LBConfig { config }

    // MARK: events

    private static let onTick: event_callback_fn = { _, _, ctx in
        let m = Unmanaged<HealthMonitor>.fromOpaque(ctx!).takeUnretainedValue()
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        m.runDueProbes(now: now)
        m.reevaluate(now: now)
        m.hooks.tick(now: now)
    }

    private static let onProbeTimer: event_callback_fn = { _, _, ctx in
        let m = Unmanaged<HealthMonitor>.fromOpaque(ctx!).takeUnretainedValue()
        m.runDueProbes(now: MonotonicInstant(nanoseconds: monotonicNanos()))
    }

    private static let onReports: event_callback_fn = { _, _, ctx in
        let m = Unmanaged<HealthMonitor>.fromOpaque(ctx!).takeUnretainedValue()
        m.applyReports()
    }

    private func applyReports() {
        guard let reports else { return }
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        for r in reports.drain() {
            guard let m = members[MemberKey(pool: r.pool, backend: r.backend)] else { continue }
            if case .eject(let until) = m.passive.record(r.outcome, now: now) {
                m.ejectedAt = now
                m.successesSinceEjection = 0
                logger.warning(
                    "backend ejected",
                    metadata: [
                        "pool": "\(config.pools[r.pool].name)", "backend": "\(m.backend.address)",
                        "for_ms": "\((until - now).milliseconds)", "ejections": "\(m.passive.ejections)",
                    ])
            }
        }
        reevaluate(now: now)
    }

    /// Starts every probe that is due: a member's scheduled probe when none is in flight or the
    /// one in flight is overdue, and a hedge for a probe unanswered after `hedgeDelay`. Then arms
    /// the probe timer for the next such instant.
    private func runDueProbes(now: MonotonicInstant) {
        var earliest: MonotonicInstant?
        for (key, m) in members {
            guard let active = m.active, let health = config.pools[m.pool].health, m.admin != .maint else { continue }
            let due = nextDue(m, active)
            if due <= now && m.probes.count < 2 {
                startProbe(key, m, health: health, now: now)
            }
            let next = nextDue(m, active)
            if m.probes.count < 2 && (earliest.map { next < $0 } ?? true) { earliest = next }
        }
        if let t = probeTimer, let earliest {
            var tv = (earliest - now).timeval
            event_add(t, &tv)
        }
    }

    /// When the member next needs a probe: its schedule, or sooner a hedge for a lone probe in flight.
    private func nextDue(_ m: Member, _ active: ActiveHealth) -> MonotonicInstant {
        guard m.probes.count == 1, let inFlight = m.probes.values.first else { return m.nextProbe }
        return min(m.nextProbe, inFlight.started + active.settings.hedgeDelay)
    }

    private func startProbe(_ key: MemberKey, _ m: Member, health: HealthConfig, now: MonotonicInstant) {
        probeSerial += 1
        let serial = probeSerial
        let group = layout[key.pool].firstIndex { $0.contains(key) }
        let tls = group.flatMap { gi in backendTLS?(config.pools[key.pool].name, config.pools[key.pool].groups[gi].name) }
        let probe = HealthProbe(base: base, backend: m.backend, check: health.check, tls: tls) { [unowned self] input in
            self.probeFinished(key, serial, input)
        }
        m.probes[serial] = (probe, now)
        if m.nextProbe <= now, var active = m.active {
            m.nextProbe = active.nextProbe(after: now)
            m.active = active
        }
        probe.start(timeout: health.timeout)
    }

    private func probeFinished(_ key: MemberKey, _ serial: Int, _ input: ActiveHealth.Input) {
        guard let m = members[key], var active = m.active,
              let finished = m.probes.removeValue(forKey: serial) else { return }
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        let wasInTransition = active.isInTransition
        let transition = active.handle(input)
        if active.isInTransition && !wasInTransition {
            // Counting towards a verdict: the next probe comes at the fast interval.
            m.nextProbe = min(m.nextProbe, active.nextProbe(after: finished.started))
        }
        m.active = active
        // Passing checks end an ejection (Envoy: successful_active_health_check_uneject_host): a
        // backend that was killed and restarted must not hold the cap's places for the rest of a
        // long, backed-off ejection while another backend is dying.
        if m.passive.isEjected(at: now) {
            m.successesSinceEjection = input == .probeSucceeded ? m.successesSinceEjection + 1 : 0
            if m.successesSinceEjection >= active.settings.rise {
                m.passive.readmit()
                m.successesSinceEjection = 0
                logger.info(
                    "ejection ended by passing checks",
                    metadata: ["pool": "\(config.pools[m.pool].name)", "backend": "\(m.backend.address)"])
                reevaluate(now: now)
            }
        }
        if case .changed(let status) = transition {
            if status == .up {
                m.everUp = true
                m.upSince = now
            }
            logger.info(
                "backend check \(status == .up ? "passed" : "failed")",
                metadata: ["pool": "\(config.pools[m.pool].name)", "backend": "\(m.backend.address)", "result": "\(input)"])
            reevaluate(now: now)
        }
        runDueProbes(now: now)
    }

    // MARK: rotation

    private func reevaluate(now: MonotonicInstant) {
        if evaluate(now: now, log: true) {
            generation += 1
            publish?(snapshot())
        }
    }

    /// Recomputes rotation and weights; true when the published view must change.
    private func evaluate(now: MonotonicInstant, log: Bool) -> Bool {
        var changed = false
        for (pi, pool) in config.pools.enumerated() {
            var event: (kind: String, backend: String, state: String)?
            for (gi, allKeys) in layout[pi].enumerated() {
                // Make before break: members leaving after a swap go once a listed one is usable.
                var keys = allKeys
                let leaving = keys.filter { members[$0]?.leaving == true }
                if !leaving.isEmpty,
                   keys.contains(where: { members[$0].map { !$0.leaving && $0.everUp && $0.admin == .ready && $0.active?.status != .down } ?? false }) {
                    for key in leaving { members[key] = nil }
                    keys.removeAll { members[$0] == nil }
                    layout[pi][gi] = keys
                    changed = true
                }
                let group = keys.compactMap { members[$0] }
                // Members an operator took out (drain, maint) are neither candidates nor usable:
                // they do not use up the group's max_unhealthy.
                let candidates = group.filter { $0.everUp && $0.admin == .ready }.map { m in
                    let down = m.active?.status == .down
                    let ejected = m.passive.isEjected(at: now)
                    // Failing checks is worst, and sticky (one already out stays out before another
                    // takes its place, so a capped group does not rotate its members as their
                    // counts tick). Among ejected members the most recent ejection is worst: it is
                    // the freshest evidence of a dead backend.
                    let badness: Int
                    if down {
                        badness = (3 << 50) + (m.inRotation ? 0 : 1)
                    } else if ejected {
                        badness = (1 << 50) + Int(truncatingIfNeeded: m.ejectedAt.nanoseconds / 1_000_000)
                    } else {
                        badness = 0
                    }
                    return RotationCap.Candidate(id: m.backend.id, wantsOut: down || ejected, badness: badness)
                }
                let decision = RotationCap.decide(candidates, maxUnhealthy: pool.maxUnhealthy)
                let groupKey = [pi, gi]
                if decision.capped != cappedGroups.contains(groupKey) {
                    event = ("group", "", decision.capped ? "capped" : "uncapped")
                    if decision.capped {
                        cappedGroups.insert(groupKey)
                        let wanting = candidates.filter(\.wantsOut).count
                        if log {
                            logger.error(
                                "group capped",
                                metadata: [
                                    "pool": "\(pool.name)", "group": "\(pool.groups[gi].name)",
                                    "unhealthy": "\(wanting)", "out": "\(decision.out.count)", "members": "\(group.count)",
                                    "max_unhealthy": "\(pool.maxUnhealthy.basisPoints / 100)%",
                                ])
                        }
                    } else {
                        cappedGroups.remove(groupKey)
                        if log { logger.notice("group no longer capped", metadata: ["pool": "\(pool.name)", "group": "\(pool.groups[gi].name)"]) }
                    }
                }
                // SRV priorities: only the lowest priority with a usable member serves; higher
                // ones are backups, in rotation only while no member of a lower priority is usable.
                let usable = group.filter { $0.everUp && $0.admin == .ready && !decision.out.contains($0.backend.id) }
                let serving = usable.map(\.priority).min()
                for m in group {
                    let usable = m.everUp && m.admin == .ready && !decision.out.contains(m.backend.id)
                    let inRotation = usable && m.priority == serving
                    let label = m.admin != .ready ? m.admin.rawValue : inRotation ? "up" : usable ? "standby"
                        : (m.everUp && m.passive.isEjected(at: now) ? "ejected" : "down")
                    if inRotation && !m.inRotation { m.upSince = now }
                    let weight = inRotation
                        ? SlowStart.weight(m.weight, upSince: m.upSince, now: now, window: pool.slowStart) : 0
                    if inRotation != m.inRotation || weight != m.effectiveWeight { changed = true }
                    if log && label != m.label {
                        event = ("backend", "\(m.backend.address)", label == "up" && m.label == "ejected" ? "readmitted" : label)
                        logger.notice(
                            "backend state changed",
                            metadata: [
                                "pool": "\(pool.name)", "group": "\(pool.groups[gi].name)",
                                "backend": "\(m.backend.address)",
                                "state": "\(label == "up" && m.label == "ejected" ? "readmitted" : label)",
                                "was": "\(m.label)",
                            ])
                    }
                    m.inRotation = inRotation
                    m.effectiveWeight = weight
                    m.label = label
                }
            }
            if log, let event { hooks.changed(pool: pi, summary: summary(pool: pi, event: event), now: now) }
        }
        return changed
    }
}

extension HealthMonitor {
    /// Counts of the pool's members by state, for hooks.
    private func summary(pool pi: Int, event: (kind: String, backend: String, state: String)) -> PoolHealthSummary {
        var s = PoolHealthSummary(event: event.kind, backend: event.backend, state: event.state)
        for keys in layout[pi] {
            for key in keys {
                guard let m = members[key] else { continue }
                s.members += 1
                switch m.label {
                case "up", "standby": s.up += 1
                case "ejected": s.ejected += 1
                default: s.down += 1
                }
            }
        }
        s.capped = cappedGroups.contains { $0[0] == pi }
        return s
    }
}

extension PassiveConfig {
    var policy: EjectionPolicy {
        EjectionPolicy(
            failures: failures, ejection: ejection, maxEjection: maxEjection,
            backoff: EjectionPolicy.Backoff(rawValue: backoff.rawValue) ?? .exponential, resetAfter: resetAfter)
    }
}

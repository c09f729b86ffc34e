// The process: worker threads, and the control loop on the calling thread, which owns signals
// and (later) discovery, health checks and the admin API. Lifecycle:
//   init  — build the first snapshot, create every worker and bind its listeners (errors here
//           are startup errors, reported before anything serves);
//   run   — start worker threads, run the control loop until SIGTERM/SIGINT;
//   drain — set `draining`, ring every doorbell: workers close listeners and idle connections,
//           finish in-flight requests, and stop; the control loop waits up to `shutdown_grace`.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Foundation
import Logging
import Synchronization

public final class Server {
    /// The running config: the file's (`fileConfig`) with the admin overrides applied.
    private var config: LBConfig
    /// The config as read from the file; a reload replaces its pools and resolvers.
    private(set) var fileConfig: LBConfig
    /// Changes made through the admin API, saved in the state file.
    private(set) var adminOverrides: AdminOverrides
    private let store: StateStore
    /// Where SIGHUP reloads from; nil: reload is off.
    private let configPath: String?
    private let shared: ServerShared
    private let registry = BackendRegistry()
    private var health: HealthMonitor?
    private var discovery: Discovery?
    private var admin: AdminServer?
    private var peerSync: PeerSync?
    private var failover: Failover?
    /// Per listener: its certificates (nil for plain listeners).
    private var tlsSlots: [TLSSlot?] = []
    /// Set by the thread that ran the VRRP resign on SIGTERM; the drain starts after it.
    private let resigned = DoneFlag()
    private var resignPoll: OpaquePointer?
    /// The overrides' version for peer sync (see PeerSync.swift).
    private var syncVersion: SyncVersion
    private var reloadsOK = 0
    private var reloadsRejected = 0
    private var workers: [Worker] = []
    private let controlBase: OpaquePointer
    private var signalEvents: [OpaquePointer] = []
    /// Per TLS listener: the timer that rotates its session-ticket keys.
    private var ticketRotations: [(timer: OpaquePointer, rotation: TicketRotation)] = []
    private var drainPoll: OpaquePointer?
    private var drainDeadline: UInt64 = 0
    private var threads: [pthread_t] = []
    public let logger: Logger

    /// Builds workers and binds every listener. Throws on a bind failure (address in use…).
    public init(config: LBConfig, configPath: String? = nil, logger: Logger, accessLogger: Logger?) throws(SystemCallError) {
        self.configPath = configPath
        self.logger = logger
        fileConfig = config
        store = StateStore(path: config.stateFile, logger: logger)
        var restored = store.state.overrides ?? AdminOverrides()
        // Overrides of settings the file changed while lbd was down give way to the file.
        let dropped = restored.basis.map { restored.reconcile(old: $0, new: PoolBasis.of(config)) } ?? []
        restored.basis = nil
        adminOverrides = restored
        let node = store.state.node ?? String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        store.state.node = node
        syncVersion = store.state.sync ?? SyncVersion(version: 0, node: node)
        for d in dropped { logger.notice("admin override not restored", metadata: ["override": "\(d)"]) }
        let (running, problems) = adminOverrides.applied(to: config)
        for p in problems { logger.error("admin override not restored", metadata: ["problem": "\(p)"]) }
        if !adminOverrides.isEmpty {
            logger.notice(
                "restored admin overrides from the state file",
                metadata: [
                    "backends": "\(adminOverrides.backends.values.map(\.count).reduce(0, +))",
                    "groups": "\(adminOverrides.groups.values.map(\.count).reduce(0, +))",
                ])
        }
        self.config = running
        signal(SIGPIPE, SIG_IGN)
        evthread_use_pthreads()
        guard let cb = event_base_new() else { throw SystemCallError(call: "event_base_new", errno: errno) }
        controlBase = cb
        let monitor = HealthMonitor(base: cb, config: running, registry: registry, logger: logger, overrides: adminOverrides)
        health = monitor
        let reports = monitor.start()
        let discovery = Discovery(
            base: cb, config: running, monitor: monitor, registry: registry, store: store, logger: logger)
        self.discovery = discovery
        let snapshots = SnapshotStore(monitor.snapshot())
        var tls: [TLSSlot?] = []
        for (i, l) in running.listeners.enumerated() {
            guard let t = l.tls else {
                tls.append(nil)
                continue
            }
            do {
                let set = try TLSContextSet(t, path: "listeners[\(i)].tls")
                logger.info("tls certificates loaded", metadata: ["listener": "\(l.name)", "subjects": "\(set.subjects.joined(separator: " | "))"])
                tls.append(TLSSlot(set))
            } catch {
                throw SystemCallError(call: "TLS for listener \(l.name): \(error.problems.map(\.description).joined(separator: "; "))", errno: EINVAL)
            }
        }
        tlsSlots = tls
        shared = ServerShared(
            config: running, store: snapshots, logger: logger, accessLogger: accessLogger, healthReports: reports, tls: tls)
        do {
            shared.backendTLS.set(try BackendTLSRegistry.build(running))
        } catch {
            throw SystemCallError(call: "backend TLS: \(error.problems.map(\.description).joined(separator: "; "))", errno: EINVAL)
        }
        let backendTLS = shared.backendTLS
        monitor.backendTLS = { pool, group in backendTLS.lookup(pool: pool, group: group) }
        for i in 0..<running.workers {
            workers.append(try Worker(index: i, shared: shared))
        }
        monitor.publish = { [unowned self] snapshot in
            snapshots.publish(snapshot)
            for w in self.workers { w.wake() }
        }
        discovery.start(base: cb)
        if !dropped.isEmpty { persistOverrides() }
        if let adminConfig = config.admin {
            var views = AdminViews(
                monitor: monitor, discovery: discovery,
                reloads: { [unowned self] in (self.reloadsOK, self.reloadsRejected) },
                fileConfig: { [unowned self] in self.fileConfig },
                pair: { [unowned self] in (self.failover?.engine.status, self.peerSync?.stats, self.failover?.settings) })
            views.tls = { [unowned self] in self.tlsMetrics }
            views.backendTLS = shared.backendTLS
            views.buffers = shared.buffers
            let shared = shared
            views.listeners = {
                shared.config.listeners.indices.map { i in
                    (shared.config.listeners[i].name, shared.listenerOpen[i].current, shared.listenerStats[i])
                }
            }
            let token = try adminConfig.tokenFile.map { path throws(SystemCallError) in try AdminToken.load(path, logger: logger) }
            let api = AdminAPI(host: self, views: views, token: token, statusPage: { StatusPage.html })
            let server = AdminServer(base: cb, logger: logger, api: api)
            try server.start(adminConfig)
            admin = server
        }
        if let syncConfig = config.failover?.vrrp.peerSync {
            let sync = try PeerSync(base: cb, config: syncConfig, host: self, logger: logger)
            try sync.start()
            peerSync = sync
        }
        // Last: the listeners are bound (on a VIP with IP_FREEBIND), so this host can serve the
        // moment it becomes master.
        if let settings = config.failover?.vrrp {
            let f = Failover(settings: settings, logger: logger)
            try f.start(
                base: cb, usable: { [unowned self] pool in self.usableBackends(pool) },
                stalled: { [unowned self] in self.stalledListeners() })
            failover = f
        }
    }

    /// Runs until a graceful shutdown completes. Returns the process exit code.
    public func run() -> Int32 {
        for w in workers {
            threads.append(startThread(name: "lbd-worker-\(w.index)") { w.run() })
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            if let ev = event_new(controlBase, sig, evs(EV_SIGNAL | EV_PERSIST), Server.onSignal, me) {
                event_add(ev, nil)
                signalEvents.append(ev)
            }
        }
        startTicketRotation()
        logger.info(
            "lbd serving",
            metadata: [
                "workers": "\(config.workers)",
                "listeners": "\(config.listeners.map { "\($0.name)=\($0.mode.rawValue)://\($0.bind)" }.joined(separator: ","))",
            ])
        event_base_loop(controlBase, Int32(EVLOOP_NO_EXIT_ON_EMPTY))
        let clean = workers.allSatisfy { $0.finished.load(ordering: .acquiring) }
        if clean {
            for t in threads { pthread_join(t, nil) }
        }
        failover?.engine.stop()
        logger.info("lbd stopped", metadata: ["clean": "\(clean)"])
        return 0
    }

    private static let onSignal: event_callback_fn = { fd, _, ctx in
        Unmanaged<Server>.fromOpaque(ctx!).takeUnretainedValue().signalReceived(fd)
    }

    private func signalReceived(_ sig: Int32) {
        switch sig {
        case SIGHUP:
            reload()
        default:
            beginDrain()
        }
    }

    /// SIGHUP: loads and validates the whole file first; a file with problems changes nothing.
    /// Pools (groups, sources, shares, weights, health) and resolvers apply live with no dropped
    /// connection; settings read only at start are reported as needing a restart.
    private func reload() {
        guard let path = configPath, let monitor = health, let discovery else { return }
        let new: LBConfig
        do {
            new = try ConfigLoader.load(path: path, defaultWorkers: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        } catch {
            logger.error(
                "reload rejected; still serving the previous config",
                metadata: ["path": "\(path)", "problems": "\(error.problems.count)"])
            for p in error.problems {
                logger.error("reload problem", metadata: ["at": "\(p.path)", "problem": "\(p.message)"])
            }
            reloadsRejected += 1
            return
        }
        guard new.pools.map(\.name) == fileConfig.pools.map(\.name) else {
            logger.error(
                "reload rejected: pools were added or removed, which needs a restart; still serving the previous config",
                metadata: ["running": "\(fileConfig.pools.map(\.name))", "file": "\(new.pools.map(\.name))"])
            reloadsRejected += 1
            return
        }
        var restartOnly: [String] = []
        if new.workers != fileConfig.workers { restartOnly.append("workers") }
        if new.listeners.map(\.withoutTLS) != fileConfig.listeners.map(\.withoutTLS) { restartOnly.append("listeners") }
        if new.timeouts != fileConfig.timeouts { restartOnly.append("timeouts") }
        if new.limits != fileConfig.limits { restartOnly.append("limits") }
        if new.log != fileConfig.log { restartOnly.append("log") }
        if new.admin != fileConfig.admin { restartOnly.append("admin") }
        if new.stateFile != fileConfig.stateFile { restartOnly.append("state_file") }
        if new.failover != fileConfig.failover { restartOnly.append("failover") }
        for (old, pool) in zip(fileConfig.pools, new.pools) {
            if old.hooks != pool.hooks { restartOnly.append("pools.\(pool.name).hooks") }
            if old.passive != pool.passive { restartOnly.append("pools.\(pool.name).passive") }
            if old.retryBudget != pool.retryBudget { restartOnly.append("pools.\(pool.name).retry_budget") }
        }
        var changed: [String] = []
        for (old, pool) in zip(fileConfig.pools, new.pools) where old != pool {
            let groups = pool.groups.filter { g in old.groups.first { $0.name == g.name } != g }.map(\.name)
            let gone = old.groups.filter { g in !pool.groups.contains { $0.name == g.name } }.map(\.name)
            changed.append("\(pool.name)(changed groups: \(groups.joined(separator: " ")); removed groups: \(gone.joined(separator: " ")))")
        }
        if new.resolvers != fileConfig.resolvers { changed.append("resolvers") }
        var file = fileConfig
        file.pools = new.pools
        file.resolvers = new.resolvers
        // Admin overrides stay unless the file changed the same setting.
        var overrides = adminOverrides
        let dropped = overrides.reconcile(old: PoolBasis.of(fileConfig), new: PoolBasis.of(file))
        var (running, problems) = overrides.applied(to: file)
        if !problems.isEmpty {
            overrides.groups = [:]
            running = file
        }
        fileConfig = file
        adminOverrides = overrides
        config = running
        if store.state.overrides != nil || !overrides.isEmpty { persistOverrides() }
        monitor.reconfigure(running, overrides: overrides)
        discovery.reconfigure(running)
        for d in dropped + problems {
            logger.notice("reload: admin override dropped", metadata: ["override": "\(d)"])
        }
        reloadCertificates(from: new)
        if let map = try? BackendTLSRegistry.build(running) { shared.backendTLS.set(map) }
        reloadsOK += 1
        logger.notice(
            "reloaded", metadata: ["path": "\(path)", "changed": "\(changed.isEmpty ? "nothing" : changed.joined(separator: ", "))"])
        if !restartOnly.isEmpty {
            logger.warning(
                "reload: settings read only at start were not applied; restart to apply them",
                metadata: ["settings": "\(restartOnly.joined(separator: ","))"])
        }
    }

    /// SIGTERM. With a pair, the VIP is handed over first (make-before-break: priority 0, the VIP
    /// kept and served until the peer's first advert as master), then the proxy drains.
    private func beginDrain() {
        guard drainPoll == nil, resignPoll == nil else {
            logger.warning("second stop signal: exiting now")
            event_base_loopbreak(controlBase)
            return
        }
        if let engine = failover?.engine {
            logger.notice("stop: resigning VRRP mastership before draining (priority 0, VIP kept until the peer takes over)")
            let done = resigned
            let resigner = startThread(name: "lbd-resign") {
                engine.resign(timeout: .seconds(3))
                done.set()
            }
            pthread_detach(resigner)
            let me = Unmanaged.passUnretained(self).toOpaque()
            resignPoll = event_new(controlBase, -1, evs(EV_PERSIST), { _, _, ctx in
                let s = Unmanaged<Server>.fromOpaque(ctx!).takeUnretainedValue()
                guard s.resigned.isSet, let poll = s.resignPoll else { return }
                event_del(poll)
                s.logger.notice(
                    "stop: VIP released; draining",
                    metadata: ["how": "\(s.failover?.engine.status.transitions.last?.reason ?? "")"])
                s.startDrain()
            }, me)
            var tv = Duration.milliseconds(5).timeval
            event_add(resignPoll, &tv)
            return
        }
        startDrain()
    }

    private func startDrain() {
        logger.info("draining", metadata: ["grace": "\(config.timeouts.shutdownGrace)"])
        shared.draining.store(true, ordering: .releasing)
        for w in workers { w.wake() }
        drainDeadline = monotonicNanos() &+ UInt64(max(0, config.timeouts.shutdownGrace.milliseconds)) * 1_000_000
        let me = Unmanaged.passUnretained(self).toOpaque()
        drainPoll = event_new(controlBase, -1, evs(EV_PERSIST), Server.onDrainPoll, me)
        var tv = Duration.milliseconds(20).timeval
        event_add(drainPoll, &tv)
    }

    private static let onDrainPoll: event_callback_fn = { _, _, ctx in
        let s = Unmanaged<Server>.fromOpaque(ctx!).takeUnretainedValue()
        let done = s.workers.allSatisfy { $0.finished.load(ordering: .acquiring) }
        if done || monotonicNanos() >= s.drainDeadline {
            if !done { s.logger.warning("shutdown grace expired with requests still in flight") }
            event_base_loopbreak(s.controlBase)
        }
    }
}

/// A one-way flag set on one thread and polled on another.
final class DoneFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// Starts a detached-until-joined pthread running `body`.
func startThread(name: String, _ body: @escaping () -> Void) -> pthread_t {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    let arg = Unmanaged.passRetained(Box(body)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(&tid, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, arg)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return tid
}

extension Server: AdminHost {
    var runningConfig: LBConfig { config }

    /// Writes `overrides` (default: the current ones) to the state file, with the file's settings
    /// they were made against.
    @discardableResult
    private func persistOverrides(_ overrides: AdminOverrides? = nil) -> SystemCallError? {
        var o = overrides ?? adminOverrides
        o.basis = PoolBasis.of(fileConfig)
        store.state.overrides = o.isEmpty ? nil : o
        return store.save()
    }

    func commit(_ overrides: AdminOverrides, reason: String) -> AdminChangeError? {
        guard let monitor = health, let discovery else { return AdminChangeError(status: 500, message: "not running") }
        let (running, problems) = overrides.applied(to: fileConfig)
        guard problems.isEmpty else { return AdminChangeError(status: 409, message: problems.joined(separator: "; ")) }
        let saved = (store.state.overrides, store.state.sync)
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        store.state.sync = SyncVersion(version: max(now, syncVersion.version &+ 1), node: syncVersion.node)
        if let error = persistOverrides(overrides) {
            (store.state.overrides, store.state.sync) = saved
            return AdminChangeError(status: 500, message: "cannot write the state file (\(error)); nothing changed")
        }
        syncVersion = store.state.sync ?? syncVersion
        install(overrides, running: running, monitor: monitor, discovery: discovery)
        logger.notice("admin change applied", metadata: ["change": "\(reason)"])
        peerSync?.exchange()
        return nil
    }

    private func install(_ overrides: AdminOverrides, running: LBConfig, monitor: HealthMonitor, discovery: Discovery) {
        let sourcesChanged = running.pools.map { $0.groups.map(\.source) } != config.pools.map { $0.groups.map(\.source) }
        adminOverrides = overrides
        config = running
        monitor.reconfigure(running, overrides: overrides)
        if sourcesChanged { discovery.reconfigure(running) }
    }
}

extension Server {
    /// Listeners whose worker loop has not turned for 3 s (it runs a sweep every second): they
    /// cannot accept, so the pair should not keep the VIP here.
    func stalledListeners() -> [String] {
        let now = monotonicNanos()
        let stuck = workers.filter { now &- $0.heartbeat.load(ordering: .relaxed) > 3_000_000_000 && !$0.finished.load(ordering: .relaxed) }
        guard !stuck.isEmpty else { return [] }
        return config.listeners.map { "\($0.name) (workers \(stuck.map { String($0.index) }.joined(separator: ",")) not turning)" }
    }

    /// Backends of `pool` that could serve now, for VRRP tracking: passing checks (or without
    /// checks), not ejected, admin-ready, in a group with a share. The max_unhealthy cap may keep
    /// failing backends in rotation; they do not count here.
    func usableBackends(_ pool: String) -> Int? {
        guard let monitor = health, let pi = config.pools.firstIndex(where: { $0.name == pool }) else { return nil }
        let status = monitor.status()
        guard pi < status.count else { return nil }
        var n = 0
        for (gi, group) in status[pi].enumerated() where gi < config.pools[pi].groups.count {
            guard config.pools[pi].groups[gi].share.basisPoints > 0 else { continue }
            n += group.members.filter { $0.admin == .ready && ($0.state == "up" || $0.state == "standby") && !$0.leaving }.count
        }
        return n
    }
}

extension Server {
    /// Reads every TLS listener's certificates again (from `config`'s paths, for the listener of
    /// the same name); a listener whose files do not load keeps its old certificates. Returns the
    /// problems.
    @discardableResult
    func reloadCertificates(from config: LBConfig) -> [String] {
        var problems: [String] = []
        for (i, l) in fileConfig.listeners.enumerated() {
            guard i < tlsSlots.count, let slot = tlsSlots[i] else { continue }
            guard let tls = config.listeners.first(where: { $0.name == l.name })?.tls ?? l.tls else { continue }
            do {
                let set = try TLSContextSet(tls, path: "listeners[\(i)].tls", previousTicketKey: slot.contexts.ticketKeys.current)
                slot.current.withLock { $0 = set }
                slot.reloads.add(1)
                logger.notice("tls certificates reloaded", metadata: ["listener": "\(l.name)", "subjects": "\(set.subjects.joined(separator: " | "))"])
            } catch {
                slot.reloadFailures.add(1)
                for p in error.problems {
                    logger.error("tls reload refused; the old certificates stay in use", metadata: ["listener": "\(l.name)", "problem": "\(p)"])
                    problems.append(p.description)
                }
            }
        }
        return problems
    }

    /// One timer per TLS listener, every `tls.ticket_key_lifetime`: its contexts are built again,
    /// which makes a new session-ticket key; the one it replaces still opens tickets until the
    /// next rotation. A failure keeps the old contexts, as a reload does.
    fileprivate func startTicketRotation() {
        for (i, l) in fileConfig.listeners.enumerated() {
            guard let tls = l.tls, i < tlsSlots.count, tlsSlots[i] != nil else { continue }
            let rotation = TicketRotation(server: self, listener: i)
            let ctx = Unmanaged.passUnretained(rotation).toOpaque()
            guard let timer = event_new(controlBase, -1, evs(EV_PERSIST), { _, _, ctx in
                let r = Unmanaged<TicketRotation>.fromOpaque(ctx!).takeUnretainedValue()
                r.server.rotateTicketKeys(listener: r.listener)
            }, ctx) else { continue }
            var tv = tls.ticketKeyLifetime.timeval
            event_add(timer, &tv)
            ticketRotations.append((timer, rotation))
        }
    }

    fileprivate func rotateTicketKeys(listener i: Int) {
        let l = fileConfig.listeners[i]
        guard let tls = l.tls, let slot = tlsSlots[i] else { return }
        do {
            let set = try TLSContextSet(tls, path: "listeners[\(i)].tls", previousTicketKey: slot.contexts.ticketKeys.current)
            slot.current.withLock { $0 = set }
            slot.ticketKeyRotations.add(1)
            logger.info("tls session-ticket keys rotated", metadata: ["listener": "\(l.name)"])
        } catch {
            slot.reloadFailures.add(1)
            for p in error.problems {
                logger.error("tls ticket-key rotation failed; the old keys stay in use", metadata: ["listener": "\(l.name)", "problem": "\(p)"])
            }
        }
    }

    func reloadTLS() -> AdminChangeError? {
        let problems = reloadCertificates(from: fileConfig)
        return problems.isEmpty ? nil : AdminChangeError(status: 409, message: "old certificates kept: " + problems.joined(separator: "; "))
    }

    var tlsMetrics: [(listener: String, slot: TLSSlot)] {
        zip(fileConfig.listeners, tlsSlots).compactMap { l, s in s.map { (l.name, $0) } }
    }
}

/// A TLS listener's rotation timer's context.
private final class TicketRotation {
    unowned let server: Server
    let listener: Int
    init(server: Server, listener: Int) {
        self.server = server
        self.listener = listener
    }
}

extension Server: PeerSyncHost {
    func syncState() -> (SyncVersion, [UInt8]) {
        var o = adminOverrides
        o.basis = PoolBasis.of(fileConfig)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (syncVersion, (try? encoder.encode(o)).map { Array($0) } ?? [])
    }

    /// The peer's overrides, made against the peer's file: those whose setting this host's file has
    /// differently give way to the file, as on a reload.
    func applyPeerState(_ version: SyncVersion, body: [UInt8]) -> String? {
        guard let monitor = health, let discovery else { return "not running" }
        guard var overrides = try? JSONDecoder().decode(AdminOverrides.self, from: Data(body)) else {
            return "not a valid admin state"
        }
        let dropped = overrides.basis.map { overrides.reconcile(old: $0, new: PoolBasis.of(fileConfig)) } ?? []
        overrides.basis = nil
        let (running, problems) = overrides.applied(to: fileConfig)
        guard problems.isEmpty else { return problems.joined(separator: "; ") }
        let saved = (store.state.overrides, store.state.sync)
        store.state.sync = version
        if let error = persistOverrides(overrides) {
            (store.state.overrides, store.state.sync) = saved
            return "cannot write the state file (\(error))"
        }
        syncVersion = version
        install(overrides, running: running, monitor: monitor, discovery: discovery)
        for d in dropped {
            logger.notice("peer sync: override not taken, this host's file differs", metadata: ["override": "\(d)"])
        }
        return nil
    }

    var peerSyncStats: PeerSyncStats? { peerSync?.stats }
}

/// The admin API's bearer token: the first line of `admin.token_file`. A missing file is created
/// with a random token (32 bytes from the system's CSPRNG, as hex), readable by the owner only.
enum AdminToken {
    static func load(_ path: String, logger: Logger) throws(SystemCallError) -> String {
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self)
            let token = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard token.utf8.count >= 16 else {
                throw SystemCallError(call: "admin.token_file \(path): the token must be at least 16 characters", errno: EINVAL)
            }
            return token
        }
        var rng = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemCallError(call: "create admin.token_file \(path)", errno: errno) }
        let line = Array((token + "\n").utf8)
        let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard n == line.count else { throw SystemCallError(call: "write admin.token_file \(path)", errno: EIO) }
        logger.notice("created admin.token_file with a new random token", metadata: ["path": "\(path)"])
        return token
    }
}

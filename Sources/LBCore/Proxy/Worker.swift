// A worker: one thread, one event_base, one SO_REUSEPORT listener per configured listener, the
// sessions it accepted, and its own pool of idle keep-alive connections to backends.
// It shares nothing mutable with other workers except the backends' atomic in-flight counters and
// the listeners' open-connection counters. The control thread talks to it only through `wake()`
// (the doorbell) after changing the `SnapshotStore` or the `draining` flag.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging
import Synchronization

/// A client connection owned by a worker.
protocol Session: AnyObject {
    /// Graceful shutdown began: stop taking new requests, finish the current one.
    func beginDrain()
    /// The worker's buffers fell below the budget after this session paused for it.
    func budgetFreed()
}

/// Process-wide state shared by the control thread and every worker. Immutable except atomics.
final class ServerShared: Sendable {
    let config: LBConfig
    let store: SnapshotStore
    let draining = Atomic<Bool>(false)
    /// Open client connections per listener (indexed like `config.listeners`), across workers.
    let listenerOpen: [Counter]
    /// What each listener turned away or timed out (indexed like `config.listeners`).
    let listenerStats: [ListenerStats]
    let logger: Logger
    let accessLogger: Logger?
    /// The configured deadlines as `timeval`s, converted once rather than on every timer arm.
    let deadlines: DeadlineTimevals
    /// Where workers report live-traffic outcomes for passive health.
    let healthReports: HealthReports?
    /// Requests and retries in flight per pool (indexed like `config.pools`), for the retry budget.
    let requestsInFlight: [Counter]
    let retriesInFlight: [Counter]
    /// Per listener (indexed like `config.listeners`): its certificates, nil for plain listeners.
    let tls: [TLSSlot?]
    /// TLS contexts for groups whose backends speak TLS.
    let backendTLS = BackendTLSRegistry()
    /// Bytes held in connection buffers against limits.max_buffer_total.
    let buffers: BufferStats

    init(
        config: LBConfig, store: SnapshotStore, logger: Logger, accessLogger: Logger?, healthReports: HealthReports?,
        tls: [TLSSlot?] = []
    ) {
        self.config = config
        self.tls = config.listeners.indices.map { $0 < tls.count ? tls[$0] : nil }
        self.healthReports = healthReports
        requestsInFlight = config.pools.map { _ in Counter() }
        retriesInFlight = config.pools.map { _ in Counter() }
        self.store = store
        self.logger = logger
        self.accessLogger = accessLogger
        listenerOpen = config.listeners.map { _ in Counter() }
        listenerStats = config.listeners.map { _ in ListenerStats() }
        deadlines = DeadlineTimevals(config.timeouts)
        buffers = BufferStats(limit: config.limits.maxBufferTotal)
    }
}

/// `TimeoutsConfig` as `timeval`s for `event_add`.
struct DeadlineTimevals: Sendable {
    let clientHead: timeval
    let clientIdle: timeval
    let clientWrite: timeval
    let clientBody: timeval
    let backendConnect: timeval
    let backendResponse: timeval
    let tcpIdle: timeval
    /// How long a closing client connection is read and discarded after lbd's FIN.
    let linger: timeval

    init(_ t: TimeoutsConfig) {
        clientHead = t.clientHead.timeval
        clientIdle = t.clientIdle.timeval
        clientWrite = t.clientWrite.timeval
        clientBody = t.clientBody.timeval
        backendConnect = t.backendConnect.timeval
        backendResponse = t.backendResponse.timeval
        tcpIdle = t.tcpIdle.timeval
        linger = Duration.seconds(2).timeval
    }
}

/// One listener bound on one worker; libevent's context for accepts.
final class WorkerListener {
    // unowned(unsafe): the worker outlives every session and listener it owns (it frees them first).
    unowned(unsafe) let worker: Worker
    let index: Int
    let config: ListenerConfig
    let poolIndex: Int
    var listener: OpaquePointer?
    var resumeTimer: OpaquePointer?
    /// accept() failure warnings: at most one per 10 s, with the count of those left out.
    var lastAcceptWarning: UInt64 = 0
    var unloggedAcceptErrors = 0

    init(worker: Worker, index: Int, config: ListenerConfig, poolIndex: Int) {
        self.worker = worker
        self.index = index
        self.config = config
        self.poolIndex = poolIndex
    }
}

/// Thread confinement: everything but `wake()` and `init` runs on the worker's own thread.
final class Worker: @unchecked Sendable {
    let index: Int
    let base: OpaquePointer
    let shared: ServerShared
    var config: LBConfig { shared.config }
    private(set) var snapshot: RuntimeSnapshot
    private var pickers: [PoolPicker]
    private(set) var listeners: [WorkerListener] = []
    private var sessions: [ObjectIdentifier: Session] = [:]
    private var idle: [Int: [Endpoint]] = [:]
    private var doorbell: OpaquePointer?
    private var sweepTimer: OpaquePointer?
    private(set) var isDraining = false
    /// "rejected request" lines: at most 10 a second per worker.
    var rejectionLog = LogRateLimit(burst: 10)
    /// This worker's share of limits.max_buffer_total.
    let budget: BufferBudget
    let finished = Atomic<Bool>(false)
    /// When the loop last ran its 1 s sweep (monotonic ns): a loop that stops turning cannot
    /// accept, and VRRP tracking faults the instance (a listener is down).
    let heartbeat = Atomic<UInt64>(0)
    private var pickSeed: UInt64

    /// Creates the loop and binds every listener (on the calling thread, so bind errors surface at start).
    init(index: Int, shared: ServerShared) throws(SystemCallError) {
        self.index = index
        self.shared = shared
        budget = BufferBudget(limit: shared.config.limits.maxBufferTotal / max(1, shared.config.workers), stats: shared.buffers)
        guard let b = event_base_new() else { throw SystemCallError(call: "event_base_new", errno: errno) }
        base = b
        snapshot = shared.store.load()
        pickSeed = 0x5EED_0000 &+ UInt64(index)
        pickers = []
        rebuildPickers()
        let me = Unmanaged.passUnretained(self).toOpaque()
        doorbell = event_new(base, -1, 0, Worker.onDoorbell, me)
        heartbeat.store(monotonicNanos(), ordering: .relaxed)
        sweepTimer = event_new(base, -1, evs(EV_PERSIST), Worker.onSweep, me)
        var tv = Duration.seconds(1).timeval
        event_add(sweepTimer, &tv)
        for (i, lc) in shared.config.listeners.enumerated() {
            guard let pi = snapshot.poolIndex(named: lc.pool) else { continue }
            let wl = WorkerListener(worker: self, index: i, config: lc, poolIndex: pi)
            try bind(wl)
            listeners.append(wl)
        }
    }

    private func bind(_ wl: WorkerListener) throws(SystemCallError) {
        guard let sa = SockAddr(wl.config.bind) else { throw SystemCallError(call: "bind \(wl.config.bind)", errno: EINVAL) }
        // A listener on one of the pair's virtual IPs binds before this host owns the address.
        let isVIP = shared.config.failover?.vrrp.virtualIPs.contains { $0.address == wl.config.bind.host } ?? false
        let fd: Int32
        do {
            fd = try listeningSocket(sa, backlog: 1024, freeBind: isVIP, delayedAck: wl.config.mode == .http)
        } catch {
            throw SystemCallError(call: "bind \(wl.config.bind)", errno: error.errno)
        }
        let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC)
        let ctx = Unmanaged.passUnretained(wl).toOpaque()
        guard let l = evconnlistener_new(base, Worker.onAccept, ctx, flags, -1, fd) else {
            let e = errno
            close(fd)
            throw SystemCallError(call: "listen \(wl.config.bind)", errno: e)
        }
        evconnlistener_set_error_cb(l, Worker.onAcceptError)
        wl.listener = l
        wl.resumeTimer = event_new(base, -1, 0, Worker.onResumeAccept, ctx)
    }

    /// Runs the loop until drained. Call on the worker's own thread.
    func run() {
        event_base_loop(base, Int32(EVLOOP_NO_EXIT_ON_EMPTY))
        finished.store(true, ordering: .releasing)
    }

    /// Rings the doorbell: re-read the snapshot and the draining flag. Any thread.
    func wake() {
        if let d = doorbell { event_active(d, EV_READ, 0) }
    }

    // MARK: picking and sessions

    private func rebuildPickers() {
        pickers = snapshot.pools.map { pool in
            pickSeed = pickSeed &* 6_364_136_223_846_793_005 &+ 1
            return PoolPicker(pool: pool, seed: pickSeed)
        }
    }

    func pick(poolIndex: Int, excluding: [Int]) -> (member: GroupMember, group: GroupSnapshot)? {
        // A new snapshot may be published while this loop has not yet run its doorbell (an accept
        // can come first in the same turn): one relaxed load here means every pick sees the latest.
        if shared.store.generation.load(ordering: .relaxed) != snapshot.generation { refreshSnapshot() }
        return pickers[poolIndex].pickMember(excluding: excluding)
    }

    func register(_ s: Session) { sessions[ObjectIdentifier(s)] = s }

    func unregister(_ s: Session, listener: Int) {
        if sessions.removeValue(forKey: ObjectIdentifier(s)) != nil {
            shared.listenerOpen[listener].subtract(1)
        }
        if isDraining && sessions.isEmpty { finishDrain() }
    }

    // MARK: idle upstream pool

    /// An idle keep-alive connection to `backendID`, or nil.
    func takeIdle(_ backendID: Int) -> Endpoint? {
        while let ep = idle[backendID]?.popLast() {
            if ep.isClosed || ep.isEOF { ep.close(); continue }
            return ep
        }
        return nil
    }

    /// Keeps a finished upstream connection for reuse; closes it when the pool is full or draining.
    func park(_ ep: Endpoint) {
        guard !isDraining, idle[ep.backendID, default: []].count < 512 else { ep.close(); return }
        ep.delegate = self
        ep.parkedAt = monotonicNanos()
        ep.setReading(true)
        idle[ep.backendID, default: []].append(ep)
    }

    private func dropIdle(_ ep: Endpoint) {
        if var list = idle[ep.backendID], let i = list.firstIndex(where: { $0 === ep }) {
            list.remove(at: i)
            idle[ep.backendID] = list
        }
        ep.close()
    }

    private func sweepIdle() {
        let limit = UInt64(max(0, config.timeouts.backendIdle.milliseconds)) * 1_000_000
        let now = monotonicNanos()
        for (id, list) in idle {
            let keep = list.filter { now &- $0.parkedAt < limit && !$0.isClosed }
            for ep in list where !keep.contains(where: { $0 === ep }) { ep.close() }
            idle[id] = keep
        }
    }

    // MARK: doorbell, drain

    private func refreshSnapshot() {
        let gen = shared.store.generation.load(ordering: .acquiring)
        if gen != snapshot.generation {
            snapshot = shared.store.load()
            rebuildPickers()
        }
    }

    private func handleDoorbell() {
        refreshSnapshot()
        if shared.draining.load(ordering: .acquiring) && !isDraining { beginDrain() }
    }

    private func beginDrain() {
        isDraining = true
        for wl in listeners {
            if let l = wl.listener { evconnlistener_free(l); wl.listener = nil }
            if let t = wl.resumeTimer { event_free(t); wl.resumeTimer = nil }
        }
        for (_, list) in idle { list.forEach { $0.close() } }
        idle = [:]
        for s in Array(sessions.values) { s.beginDrain() }
        if sessions.isEmpty { finishDrain() }
    }

    private func finishDrain() {
        event_base_loopbreak(base)
    }

    // MARK: accept

    fileprivate func accept(fd: Int32, address: UnsafeMutablePointer<sockaddr>?, on wl: WorkerListener) {
        let open = shared.listenerOpen[wl.index].add(1)
        if open > wl.config.maxconn || isDraining {
            shared.listenerOpen[wl.index].subtract(1)
            if !isDraining { shared.listenerStats[wl.index].refusedMaxconn.add(1) }
            _ = Glibc.close(fd)
            return
        }
        let peer = address.map { SockAddr.hostText($0) } ?? "unknown"
        let session: Session
        switch wl.config.mode {
        case .http: session = HTTPSession(worker: self, listener: wl, fd: fd, clientAddress: peer)
        case .tcp: session = TCPSession(worker: self, listener: wl, fd: fd, clientAddress: peer)
        }
        register(session)
    }

    private static let onAccept: evconnlistener_cb = { _, fd, address, _, ctx in
        let wl = Unmanaged<WorkerListener>.fromOpaque(ctx!).takeUnretainedValue()
        wl.worker.accept(fd: fd, address: address, on: wl)
    }

    /// accept() failed (EMFILE, ENFILE, ENOBUFS…): pause this listener briefly instead of spinning.
    private static let onAcceptError: evconnlistener_errorcb = { listener, ctx in
        let wl = Unmanaged<WorkerListener>.fromOpaque(ctx!).takeUnretainedValue()
        let err = errno
        wl.worker.shared.listenerStats[wl.index].acceptErrors.add(1)
        if let l = listener { evconnlistener_disable(l) }
        let now = monotonicNanos()
        if wl.lastAcceptWarning == 0 || now &- wl.lastAcceptWarning >= 10_000_000_000 {
            wl.worker.shared.logger.warning(
                "accept failed; pausing listener for 100ms",
                metadata: [
                    "listener": "\(wl.config.name)", "errno": "\(err)", "error": "\(String(cString: strerror(err)))",
                    "since_last_warning": "\(wl.unloggedAcceptErrors)",
                ])
            wl.lastAcceptWarning = now
            wl.unloggedAcceptErrors = 0
        } else {
            wl.unloggedAcceptErrors += 1
        }
        var tv = Duration.milliseconds(100).timeval
        if let t = wl.resumeTimer { event_add(t, &tv) }
    }

    private static let onResumeAccept: event_callback_fn = { _, _, ctx in
        let wl = Unmanaged<WorkerListener>.fromOpaque(ctx!).takeUnretainedValue()
        if let l = wl.listener { evconnlistener_enable(l) }
    }

    private static let onDoorbell: event_callback_fn = { _, _, ctx in
        Unmanaged<Worker>.fromOpaque(ctx!).takeUnretainedValue().handleDoorbell()
    }

    private static let onSweep: event_callback_fn = { _, _, ctx in
        let w = Unmanaged<Worker>.fromOpaque(ctx!).takeUnretainedValue()
        w.heartbeat.store(monotonicNanos(), ordering: .relaxed)
        w.sweepIdle()
        w.budget.wakeIfRoom()
    }
}

/// Idle pooled upstream connections: any byte or EOF from the backend while idle ends them.
extension Worker: EndpointDelegate {
    func endpointDidConnect(_ endpoint: Endpoint) {}
    func endpointDidRead(_ endpoint: Endpoint) { dropIdle(endpoint) }
    func endpointDidDrain(_ endpoint: Endpoint) {}
    func endpointDidFail(_ endpoint: Endpoint, errno: Int32) { dropIdle(endpoint) }
}

/// Nanoseconds on the monotonic clock (shell code only; pure cores take time as a parameter).
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

// One client connection in TCP mode (L4): connect to a backend (retrying others on failure),
// then pipe bytes both ways with back-pressure. A FIN from one side is passed on as a FIN to the
// other once everything before it was written (half-close); the session ends when both
// directions are closed, on an error, or after `tcp_idle` without traffic.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging

final class TCPSession: Session, EndpointDelegate {
    // unowned(unsafe): the worker outlives every session and listener it owns (it frees them first).
    unowned(unsafe) let worker: Worker
    let listener: WorkerListener
    let client: Endpoint
    let clientAddress: String
    private var upstream: Endpoint?
    private var backend: Backend?
    /// The traffic counters of the backend (as a group member) and group of this connection.
    private var stats: (member: TrafficStats, group: TrafficStats)?
    private var timer: OpaquePointer?
    private var excluded: [Int] = []
    private var attempts = 0
    private var closed = false
    private var connected = false
    /// Bytes this session last reported to the worker's BufferBudget.
    private var heldBytes = 0
    private var timeouts: DeadlineTimevals { worker.shared.deadlines }

    init(worker: Worker, listener: WorkerListener, fd: Int32, clientAddress: String) {
        self.worker = worker
        self.listener = listener
        self.clientAddress = clientAddress
        client = Endpoint(fd: fd, base: worker.base)
        timer = event_new(worker.base, -1, 0, TCPSession.onTimer, Unmanaged.passUnretained(self).toOpaque())
        client.delegate = self
        connectUpstream()
    }

    deinit {
        if let t = timer { event_free(t) }
    }

    /// TCP sessions carry no request boundary: they run on until they end or the grace expires.
    func beginDrain() {}

    func budgetFreed() { pump() }

    private func arm(_ after: timeval) {
        guard let t = timer else { return }
        var tv = after
        event_add(t, &tv)
    }

    private static let onTimer: event_callback_fn = { _, _, ctx in
        let s = Unmanaged<TCPSession>.fromOpaque(ctx!).takeUnretainedValue()
        if s.connected { s.finish() } else { s.connectFailed(errno: ETIMEDOUT) }
    }

    private func connectUpstream() {
        guard let (member, group) = worker.pick(poolIndex: listener.poolIndex, excluding: excluded) else {
            worker.shared.logger.warning("tcp: no usable backend", metadata: ["client": "\(clientAddress)"])
            finish()
            return
        }
        let b = member.backend
        backend = b
        stats = (member.stats, group.stats)
        member.stats.request()
        group.stats.request()
        worker.snapshot.pools[listener.poolIndex].stats.request()
        b.inFlight.add(1, ordering: .relaxed)
        do {
            switch try startConnect(to: b.sockaddr) {
            case .connected(let fd):
                upstream = Endpoint(fd: fd, base: worker.base)
                upstream?.delegate = self
                didConnect()
            case .inProgress(let fd):
                upstream = Endpoint(fd: fd, base: worker.base, connecting: true)
                upstream?.delegate = self
                arm(timeouts.backendConnect)
            }
        } catch {
            connectFailed(errno: error.errno)
        }
    }

    private func connectFailed(errno: Int32) {
        stats?.member.error()
        stats?.group.error()
        if let b = backend {
            b.inFlight.subtract(1, ordering: .relaxed)
            excluded.append(b.id)
            worker.reportOutcome(.connectFailed, backend: b, pool: listener.poolIndex)
            worker.shared.logger.warning(
                "backend connect failed",
                metadata: ["backend": "\(b.address)", "error": "\(String(cString: strerror(errno)))"])
            backend = nil
        }
        upstream?.close()
        upstream = nil
        attempts += 1
        if attempts <= worker.snapshot.pools[listener.poolIndex].retries {
            connectUpstream()
        } else {
            finish()
        }
    }

    private func didConnect() {
        connected = true
        if let b = backend { worker.reportOutcome(.success, backend: b, pool: listener.poolIndex) }
        arm(timeouts.tcpIdle)
        pump()
    }

    func endpointDidConnect(_ endpoint: Endpoint) {
        guard endpoint === upstream else { return }
        didConnect()
    }

    func endpointDidRead(_ endpoint: Endpoint) {
        arm(timeouts.tcpIdle)
        pump()
    }

    func endpointDidDrain(_ endpoint: Endpoint) {
        pump()
    }

    func endpointDidFail(_ endpoint: Endpoint, errno: Int32) {
        if endpoint === upstream && !connected {
            connectFailed(errno: errno)
        } else {
            finish()
        }
    }

    /// Moves what each side has read to the other, passes FINs on, and sets read interest.
    private func pump() {
        guard !closed, connected, let up = upstream else { return }
        let max = worker.config.limits.maxBuffer
        if client.inputLength > 0 { evbuffer_add_buffer(up.output, client.input) }
        if up.inputLength > 0 { evbuffer_add_buffer(client.output, up.input) }
        if up.flush() != nil || client.flush() != nil {
            finish()
            return
        }
        if client.isEOF { up.shutdownWriteWhenFlushed() }
        if up.isEOF { client.shutdownWriteWhenFlushed() }
        if client.isEOF && up.isEOF && client.outputLength == 0 && up.outputLength == 0 {
            finish()
            return
        }
        let budget = worker.budget
        budget.report(&heldBytes, client.inputLength + client.outputLength + up.inputLength + up.outputLength)
        let room = !budget.isOver
        client.setReading(room && up.outputLength < max)
        up.setReading(room && client.outputLength < max)
        if !room { budget.pause(self) }
        budget.wakeIfRoom()
    }

    private func finish() {
        guard !closed else { return }
        closed = true
        if let b = backend {
            b.inFlight.subtract(1, ordering: .relaxed)
            backend = nil
        }
        if let t = timer { event_del(t) }
        upstream?.close()
        upstream = nil
        client.close()
        worker.budget.report(&heldBytes, 0)
        worker.budget.forget(self)
        worker.unregister(self, listener: listener.index)
        worker.budget.wakeIfRoom()
    }
}

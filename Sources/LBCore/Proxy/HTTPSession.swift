// One client connection in HTTP mode: requests parsed strictly, one at a time (pipelined requests
// wait in the input buffer, bounded), each forwarded to a backend picked from the listener's pool
// over an idle keep-alive upstream connection or a new one, bodies streamed both ways with
// back-pressure, the response streamed back; then the connection waits for the next request.
//
// Shell code: framing decisions come from the parsers (HTTP/), picking from PoolPicker. Runs on its
// worker's thread only. Owned by the worker's session table until `finish()`.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging

final class HTTPSession: Session, EndpointDelegate {
    private enum Phase {
        /// Waiting for (the rest of) a request head.
        case head
        /// Waiting for a new upstream connection to complete.
        case connecting
        /// Request sent or being sent; response awaited or being streamed.
        case forwarding
        /// Final bytes being flushed, then a lingering close that discards input.
        case closing
        case closed
    }
    private enum Deadline { case head, idle, connect, body, response, clientWrite, linger }
    /// The request body must advance by this much (or end) within each timeouts.client_body.
    private static let bodyProgressStep = 1024

    // unowned(unsafe): the worker outlives every session and listener it owns (it frees them first).
    unowned(unsafe) let worker: Worker
    let listener: WorkerListener
    let client: Endpoint
    let clientAddress: String
    private var timer: OpaquePointer?
    private var phase = Phase.head
    /// Bytes this session last reported to the worker's BufferBudget.
    private var heldBytes = 0
    private var deadline = Deadline.head
    private var limits: HTTPLimits { worker.config.limits }
    private var timeouts: DeadlineTimevals { worker.shared.deadlines }

    // The request in progress.
    private var request: HTTPRequestHead?
    private var requestBody = BodyState.done
    private var requestStartNanos: UInt64 = 0
    private var excluded: [Int] = []
    private var attempts = 0
    /// What to answer when no further backend can be tried: 503 after connect failures, 502 when
    /// a backend was reached but failed before responding.
    private var exhaustedStatus = 503
    /// This request is counted in its pool's requests in flight, with this many retries.
    private var countedRequest = false
    private var countedRetries = 0
    private var closeAfterResponse = false
    private var requestsServed = 0
    private var waitingForFirstByte = true
    private var lingering = true

    // The upstream side.
    private var upstream: Endpoint?
    private var backend: Backend?
    /// The traffic counters of the current backend (as a group member) and its group.
    private var stats: (member: TrafficStats, group: TrafficStats)?
    private var upstreamWasReused = false
    /// TLS to the picked backend's group, nil for plain groups.
    private var upstreamTLS: BackendTLS?
    private var response: HTTPResponseHead?
    private var responseBody = BodyState.done
    private var responseBytes: UInt64 = 0
    private var interimResponses = 0
    /// The client's buffered output when the client-write deadline was armed (progress check).
    private var outputAtWriteDeadline = 0
    /// Request body bytes forwarded since the body deadline was last armed.
    private var bodyProgress = 0
    /// The worker was over max_buffer_total at some point of this client_body window, so a
    /// stalled body may be lbd's doing.
    private var squeezed = false

    init(worker: Worker, listener: WorkerListener, fd: Int32, clientAddress: String) {
        self.worker = worker
        self.listener = listener
        self.clientAddress = clientAddress
        client = Endpoint(fd: fd, base: worker.base)
        if let slot = worker.shared.tls[listener.index] { client.startTLS(slot.contexts, stats: slot.stats) }
        timer = event_new(worker.base, -1, 0, HTTPSession.onTimer, Unmanaged.passUnretained(self).toOpaque())
        client.delegate = self
        client.setReading(true)
        arm(.head, timeouts.clientHead)
        if worker.isDraining { closeAfterResponse = true }
    }

    deinit {
        if let t = timer { event_free(t) }
    }

    func beginDrain() {
        closeAfterResponse = true
        if phase == .head && client.inputLength == 0 { finish() }
    }

    func budgetFreed() { updateInterest() }

    // MARK: timers

    private func arm(_ kind: Deadline, _ after: timeval) {
        deadline = kind
        if kind == .body { squeezed = worker.budget.isOver }
        guard let t = timer else { return }
        var tv = after
        event_add(t, &tv)
    }

    private static let onTimer: event_callback_fn = { _, _, ctx in
        Unmanaged<HTTPSession>.fromOpaque(ctx!).takeUnretainedValue().deadlinePassed()
    }

    private func deadlinePassed() {
        switch (phase, deadline) {
        case (.closed, _):
            return
        case (.closing, _), (_, .linger):
            finish()
        case (.head, .idle):
            finish()
        case (.head, _) where client.isTLS && !client.tlsHandshakeComplete:
            // The handshake deadline (timeouts.client_head): nothing can be said in plaintext.
            worker.shared.tls[listener.index]?.stats.failed("timeout")
            finish()
        case (.head, _):
            // A head that never completed (slowloris), or a connection that never sent one.
            if client.inputLength > 0 || requestsServed == 0 {
                respondError(status: 408, reason: "Request Timeout", log: "request head deadline")
            } else {
                finish()
            }
        case (.connecting, _):
            connectFailed(errno: ETIMEDOUT)
        case (.forwarding, .body) where squeezed:
            // lbd stopped reading the body for max_buffer_total during this window: the stall
            // is lbd's, so the client is told to come back rather than blamed (R5).
            worker.shared.buffers.squeezed.add(1)
            respondError(status: 503, reason: "Service Unavailable", log: "request body stalled by limits.max_buffer_total")
        case (.forwarding, .body):
            // The client sent less than 1 KiB of its body in timeouts.client_body: its stall,
            // not the backend's (S3).
            worker.shared.listenerStats[listener.index].clientBodyTimeouts.add(1)
            respondError(status: 408, reason: "Request Timeout", log: "request body deadline")
        case (.forwarding, .clientWrite):
            // The client took some bytes since the deadline was armed: slow, not stuck.
            if client.outputLength < outputAtWriteDeadline {
                outputAtWriteDeadline = client.outputLength
                arm(.clientWrite, timeouts.clientWrite)
                return
            }
            worker.shared.listenerStats[listener.index].clientWriteTimeouts.add(1)
            abort("client not reading the response")
        case (.forwarding, _):
            backendFailed()
            if response == nil {
                respondError(status: 504, reason: "Gateway Timeout", log: "backend response deadline")
            } else {
                abort("backend stalled mid-response")
            }
        }
    }

    // MARK: endpoint events

    func endpointDidConnect(_ endpoint: Endpoint) {
        guard endpoint === upstream, phase == .connecting else { return }
        sendRequestHead()
        updateInterest()
    }

    func endpointDidRead(_ endpoint: Endpoint) {
        if endpoint === client {
            clientReadable()
        } else if endpoint === upstream {
            upstreamReadable()
        }
        updateInterest()
    }

    func endpointDidDrain(_ endpoint: Endpoint) {
        if endpoint === client {
            if phase == .closing {
                lingerAfterFlush()
                return
            }
            if phase == .forwarding, let up = upstream { pumpResponse(up) }
        } else if endpoint === upstream, phase == .forwarding {
            pumpRequest()
        }
        updateInterest()
    }

    func endpointDidFail(_ endpoint: Endpoint, errno: Int32) {
        if endpoint === client {
            finish()
        } else if endpoint === upstream {
            if phase == .connecting || backendTLSRefused(endpoint) {
                connectFailed(errno: errno)
            } else {
                upstreamLost(reason: "backend connection error: \(String(cString: strerror(errno)))")
            }
            updateInterest()
        }
    }

    // MARK: client side

    private func clientReadable() {
        switch phase {
        case .closing:
            evbuffer_drain(client.input, client.inputLength)
            if client.isEOF { finish() }
        case .head:
            parseHead()
        case .connecting:
            break
        case .forwarding:
            pumpRequest()
            if client.isEOF && !requestBody.isDone {
                abort("client closed during the request body")
            }
        case .closed:
            break
        }
    }

    private func parseHead() {
        let available = client.inputLength
        guard available > 0 else {
            if client.isEOF { finish() }
            return
        }
        if waitingForFirstByte {
            waitingForFirstByte = false
            if requestsServed > 0 { arm(.head, timeouts.clientHead) }
        }
        let n = min(available, limits.maxHeaderBytes + 1024)
        guard let p = evbuffer_pullup(client.input, n) else { return }
        switch HTTPRequestParser.parse(UnsafeRawBufferPointer(start: p, count: n), limits: limits) {
        case .incomplete:
            // The rest of the head is still coming: acknowledge the part now (see acknowledgeNow).
            if client.isEOF { finish() } else { client.acknowledgeNow() }
        case .failed(let error):
            respondError(status: error.status, reason: error.reasonPhrase, log: "\(error)")
        case .complete(let head):
            evbuffer_drain(client.input, head.headLength)
            start(head)
        }
    }

    private func start(_ head: HTTPRequestHead) {
        request = head
        requestStartNanos = monotonicNanos()
        requestBody = BodyState(head.framing, maxChunkExtension: limits.maxChunkExtension)
        if bodyStillComing { client.acknowledgeNow() }
        excluded.removeAll(keepingCapacity: true)
        attempts = 0
        exhaustedStatus = 503
        worker.shared.requestsInFlight[listener.poolIndex].add(1)
        worker.snapshot.pools[listener.poolIndex].stats.request()
        countedRequest = true
        response = nil
        responseBytes = 0
        interimResponses = 0
        if !head.keepAlive || worker.isDraining { closeAfterResponse = true }
        connectUpstream()
    }

    /// Whether the request body has bytes the client has not sent yet (as far as lbd has read).
    private var bodyStillComing: Bool {
        switch requestBody {
        case .done: false
        case .length(let remaining): UInt64(client.inputLength) < remaining
        case .chunked, .untilClose: true
        }
    }

    // MARK: upstream side

    private func connectUpstream() {
        guard let (member, group) = worker.pick(poolIndex: listener.poolIndex, excluding: excluded) else {
            if exhaustedStatus == 502 {
                badGateway("backends failed before responding")
            } else {
                respondError(status: 503, reason: "Service Unavailable", log: "no usable backend")
            }
            return
        }
        let b = member.backend
        backend = b
        upstreamTLS = worker.shared.backendTLS.lookup(pool: worker.snapshot.pools[listener.poolIndex].name, group: group.name)
        stats = (member.stats, group.stats)
        member.stats.request()
        group.stats.request()
        b.inFlight.add(1, ordering: .relaxed)
        if let ep = worker.takeIdle(b.id) {
            upstream = ep
            upstreamWasReused = true
            ep.delegate = self
            sendRequestHead()
            return
        }
        upstreamWasReused = false
        do {
            switch try startConnect(to: b.sockaddr) {
            case .connected(let fd):
                upstream = makeUpstream(fd: fd, connecting: false, backend: b)
                sendRequestHead()
            case .inProgress(let fd):
                upstream = makeUpstream(fd: fd, connecting: true, backend: b)
                phase = .connecting
                arm(.connect, timeouts.backendConnect)
            }
        } catch {
            connectFailed(errno: error.errno)
        }
    }

    private func makeUpstream(fd: Int32, connecting: Bool, backend: Backend) -> Endpoint {
        let ep = Endpoint(fd: fd, base: worker.base, connecting: connecting)
        if let tls = upstreamTLS, !ep.startClientTLS(tls, host: backend.address.host) {
            worker.shared.logger.error("backend TLS: OpenSSL could not make a session", metadata: ["backend": "\(backend.address)"])
        }
        ep.backendID = backend.id
        ep.delegate = self
        return ep
    }

    /// The backend could not be reached: try another one, within the pool's retries.
    private func connectFailed(errno: Int32) {
        backendFailed()
        let failed = backend
        releaseUpstream(reuse: false)
        if let b = failed {
            excluded.append(b.id)
            worker.reportOutcome(.connectFailed, backend: b, pool: listener.poolIndex)
            worker.shared.logger.warning(
                "backend connect failed",
                metadata: ["backend": "\(b.address)", "error": "\(String(cString: strerror(errno)))"])
        }
        attempts += 1
        // Not charged to the retry budget: the request reached no backend, so trying another
        // adds no load anywhere (the budget guards retries of requests a backend already got).
        if attempts <= worker.snapshot.pools[listener.poolIndex].retries {
            connectUpstream()
        } else if exhaustedStatus == 502 {
            badGateway("backends failed before responding")
        } else {
            respondError(status: 503, reason: "Service Unavailable", log: "backends unreachable")
        }
    }

    private func sendRequestHead() {
        guard let up = upstream, let req = request else { return }
        phase = .forwarding
        var sink = EvbufferHeadSink(up.output)
        req.writeUpstreamHead(clientAddress: clientAddress, forwardedProto: client.isTLS ? "https" : "http", to: &sink)
        if req.expectContinue && !requestBody.isDone && req.versionMinor >= 1 {
            client.append("HTTP/1.1 100 Continue\r\n\r\n")
            if client.flush() != nil { finish(); return }
        }
        pumpRequest()
        if phase != .forwarding { return }
        up.setReading(true)
        arm(.response, timeouts.backendResponse)
        if !requestBody.isDone {
            bodyProgress = 0
            arm(.body, timeouts.clientBody)
        }
    }

    private func pumpRequest() {
        guard let up = upstream, phase == .forwarding else { return }
        if !requestBody.isDone {
            do {
                bodyProgress += try BodyPump.pump(&requestBody, from: client.input, to: up.output, rechunk: true)
            } catch {
                if response == nil {
                    respondError(status: error.status, reason: error.reasonPhrase, log: "request body: \(error)")
                } else {
                    abort("bad request body: \(error)")
                }
                return
            }
        }
        if deadline == .body {
            if requestBody.isDone {
                arm(.response, timeouts.backendResponse)
            } else if bodyProgress >= Self.bodyProgressStep {
                bodyProgress = 0
                arm(.body, timeouts.clientBody)
            }
        }
        if let e = up.flush() {
            if backendTLSRefused(up) {
                connectFailed(errno: e)
            } else {
                upstreamLost(reason: "backend write failed: \(String(cString: strerror(e)))")
            }
        }
    }

    /// A backend whose TLS handshake failed got nothing of the request: it counts and retries
    /// like a connect failure. Logged and counted here.
    private func backendTLSRefused(_ up: Endpoint) -> Bool {
        guard let why = up.tlsFailure else { return false }
        let registry = worker.shared.backendTLS
        (why.hasPrefix("certificate") ? registry.verifyFailures : registry.otherFailures).add(1)
        worker.shared.logger.warning(
            "backend TLS refused", metadata: ["backend": "\(backend.map { "\($0.address)" } ?? "-")", "reason": "\(why)"])
        return true
    }

    private func upstreamReadable() {
        guard let up = upstream, phase == .forwarding else { return }
        if response == nil {
            parseResponseHead(up)
            guard phase == .forwarding, response != nil else { return }
        } else {
            pumpResponse(up)
        }
    }

    private func parseResponseHead(_ up: Endpoint) {
        while response == nil {
            let available = up.inputLength
            if available == 0 {
                if up.isEOF { upstreamLost(reason: "backend closed before responding") }
                return
            }
            let n = min(available, 65_536 + 4)
            guard let p = evbuffer_pullup(up.input, n), let req = request else { return }
            let result = HTTPResponseParser.parse(
                UnsafeRawBufferPointer(start: p, count: n), requestWasHEAD: req.isHEAD, maxHeaderBytes: 65_536)
            switch result {
            case .incomplete:
                if up.isEOF || available > 65_536 {
                    badGateway("incomplete response head")
                }
                return
            case .failed(let error):
                badGateway("invalid response head: \(error)")
                return
            case .complete(let head):
                evbuffer_drain(up.input, head.headLength)
                if head.isInterim {
                    interimResponses += 1
                    if interimResponses > 1000 { badGateway("too many interim responses") }
                    continue
                }
                if head.status == 101 {
                    badGateway("unexpected 101 Switching Protocols")
                    return
                }
                beginResponse(head, on: up)
            }
        }
    }

    private func beginResponse(_ head: HTTPResponseHead, on up: Endpoint) {
        guard let req = request else { return }
        response = head
        arm(.response, timeouts.backendResponse)
        if head.forcesClientClose(clientVersionMinor: req.versionMinor) { closeAfterResponse = true }
        var sink = EvbufferHeadSink(client.output)
        head.writeClientHead(clientVersionMinor: req.versionMinor, closeAfter: closeAfterResponse, to: &sink)
        responseBody = BodyState(head.framing, maxChunkExtension: limits.maxChunkExtension)
        pumpResponse(up)
    }

    private func pumpResponse(_ up: Endpoint) {
        guard let req = request, phase == .forwarding, response != nil else { return }
        do {
            let n = try BodyPump.pump(&responseBody, from: up.input, to: client.output, rechunk: req.versionMinor >= 1)
            responseBytes &+= UInt64(n)
            if n > 0 { arm(.response, timeouts.backendResponse) }
        } catch {
            if let e = client.flush() { _ = e }
            abort("invalid response body: \(error)")
            return
        }
        if case .untilClose = responseBody, up.isEOF { responseBody = .done }
        // The last response of a cleanly closing connection (as responseComplete decides):
        // close_notify leaves in the same send as its last bytes.
        if responseBody.isDone, closeAfterResponse || client.isEOF, requestBody.isDone, client.inputLength == 0 {
            client.closeTLSWhenFlushed()
        }
        if client.flush() != nil {
            finish()
            return
        }
        if responseBody.isDone {
            responseComplete()
        } else if up.isEOF {
            abort("backend closed mid-response")
        }
    }

    private func responseComplete() {
        guard let req = request else { return }
        let status = response?.status ?? 0
        let reusable = (response?.keepAlive ?? false) && requestBody.isDone
        accessLog(req, status: status)
        let nanos = monotonicNanos() &- requestStartNanos
        stats?.member.response(status: status, nanoseconds: nanos)
        stats?.group.response(status: status, nanoseconds: nanos)
        worker.snapshot.pools[listener.poolIndex].stats.response(status: status, nanoseconds: nanos)
        if let b = backend {
            let failed = status >= 500 && worker.config.pools[listener.poolIndex].passive.on5xx
            worker.reportOutcome(failed ? .failed : .success, backend: b, pool: listener.poolIndex)
        }
        endRequest()
        releaseUpstream(reuse: reusable)
        requestsServed += 1
        request = nil
        response = nil
        if closeAfterResponse || !requestBody.isDone || client.isEOF {
            startClosing(linger: !requestBody.isDone || client.inputLength > 0)
            return
        }
        phase = .head
        waitingForFirstByte = true
        arm(.idle, timeouts.clientIdle)
        if client.inputLength > 0 { parseHead() }
    }

    /// Counts an attempt on the current backend that got no complete response.
    private func backendFailed() {
        guard backend != nil, let stats else { return }
        stats.member.error()
        stats.group.error()
    }

    /// Ends the use of the current upstream connection: back to the idle pool, or closed.
    private func releaseUpstream(reuse: Bool) {
        if let b = backend {
            b.inFlight.subtract(1, ordering: .relaxed)
            backend = nil
            stats = nil
        }
        guard let up = upstream else { return }
        upstream = nil
        if reuse && up.inputLength == 0 && !up.isEOF && up.outputLength == 0 {
            worker.park(up)
        } else {
            up.close()
        }
    }

    /// The upstream connection failed or closed before the response completed.
    private func upstreamLost(reason: String) {
        guard let req = request else { return }
        backendFailed()
        let nothingSentBack = response == nil
        // A pooled connection the backend closed as we reused it, or a fresh one that died before
        // any response byte: safe to replay when the request has no body (RFC 9110 §9.2.2).
        if nothingSentBack && req.framing == .none && req.isIdempotent {
            let failed = backend
            let wasReused = upstreamWasReused
            releaseUpstream(reuse: false)
            if !wasReused { exhaustedStatus = 502 }
            if let b = failed, !wasReused {
                excluded.append(b.id)
                worker.reportOutcome(.failed, backend: b, pool: listener.poolIndex)
            }
            attempts += wasReused ? 0 : 1
            // Replaying on a fresh connection after a stale pooled one is not a retry.
            if attempts <= worker.snapshot.pools[listener.poolIndex].retries && (wasReused || retryAllowed()) {
                connectUpstream()
                return
            }
            badGateway(reason)
            return
        }
        if let b = backend, !upstreamWasReused { worker.reportOutcome(.failed, backend: b, pool: listener.poolIndex) }
        if nothingSentBack {
            badGateway(reason)
        } else {
            abort(reason)
        }
    }

    /// Takes one retry from the pool's budget, or says no (the retry would multiply an outage).
    private func retryAllowed() -> Bool {
        let pi = listener.poolIndex
        // A floor of 10: one SIGKILLed backend resets every request in flight on it at once, and
        // each of those must be retried; 3 (Envoy's default) failed the Reaper about once in 1M.
        let budget = RetryBudget(ratio: worker.config.pools[pi].retryBudget, minimum: 10)
        let shared = worker.shared
        guard budget.allows(
            retriesInFlight: shared.retriesInFlight[pi].current, requestsInFlight: shared.requestsInFlight[pi].current)
        else {
            shared.logger.warning("retry budget exhausted", metadata: ["pool": "\(worker.config.pools[pi].name)"])
            return false
        }
        shared.retriesInFlight[pi].add(1)
        countedRetries += 1
        return true
    }

    /// Ends the request's share of the pool's in-flight counts. Idempotent.
    private func endRequest() {
        guard countedRequest else { return }
        countedRequest = false
        let pi = listener.poolIndex
        worker.shared.requestsInFlight[pi].subtract(1)
        if countedRetries > 0 {
            worker.shared.retriesInFlight[pi].subtract(countedRetries)
            countedRetries = 0
        }
    }

    private func badGateway(_ why: String) {
        respondError(status: 502, reason: "Bad Gateway", log: why)
    }

    // MARK: ending

    /// Sends lbd's own error response (if nothing was sent for this request yet) and closes.
    private func respondError(status: Int, reason: String, log: String) {
        guard phase != .closing && phase != .closed else { return }
        if response != nil {
            abort(log)
            return
        }
        if let req = request {
            accessLog(req, status: status, note: log)
            worker.snapshot.pools[listener.poolIndex].stats.response(
                status: status, nanoseconds: monotonicNanos() &- requestStartNanos)
        }
        endRequest()
        releaseUpstream(reuse: false)
        let body = "\(status) \(reason)\n"
        // RFC 9110 §15.5.6: a 405 lists the methods the target supports.
        let allow = status == 405 ? "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n" : ""
        let text = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n"
            + allow + "Connection: close\r\n\r\n" + body
        client.append(Array(text.utf8))
        if request == nil {
            worker.shared.listenerStats[listener.index].rejected(status: status)
            if let unlogged = worker.rejectionLog.admit(now: monotonicNanos()) {
                worker.shared.logger.info(
                    "rejected request",
                    metadata: [
                        "client": "\(clientAddress)", "status": "\(status)", "why": "\(log)",
                        "unlogged_since": "\(unlogged)",
                    ])
            }
        }
        startClosing()
    }

    /// Flushes what is queued for the client, then closes. With `linger` (after an error, or when
    /// the client sent more than lbd will answer) it sends FIN and discards input until the client
    /// closes or the linger deadline passes, so unread bytes cannot turn the close into an RST that
    /// destroys the response; after a clean last response it closes as soon as the output is out.
    private func startClosing(linger: Bool = true) {
        phase = .closing
        lingering = linger
        releaseUpstream(reuse: false)
        // After a clean last response, close_notify leaves with its last bytes.
        if !linger { client.closeTLSWhenFlushed() }
        if client.flush() != nil {
            finish()
            return
        }
        if client.outputLength == 0 { lingerAfterFlush() }
        arm(.linger, timeouts.linger)
        updateInterest()
    }

    private func lingerAfterFlush() {
        guard lingering else {
            // A clean end: TLS says so with close_notify (RFC 8446 6.1), which also keeps a TLS 1.2
            // session resumable by ID. An abort closes without it, so a client can tell.
            client.closeTLSWhenFlushed()
            client.flush()
            finish()
            return
        }
        client.shutdownWriteWhenFlushed()
        if client.isEOF { finish() }
    }

    /// Drops both connections at once: the client sees a truncated response.
    private func abort(_ why: String) {
        if let req = request { accessLog(req, status: response?.status ?? 0, note: "aborted: \(why)") }
        worker.shared.logger.warning("request aborted", metadata: ["client": "\(clientAddress)", "why": "\(why)"])
        finish()
    }

    private func finish() {
        guard phase != .closed else { return }
        phase = .closed
        endRequest()
        releaseUpstream(reuse: false)
        if let t = timer { event_del(t) }
        client.close()
        worker.budget.report(&heldBytes, 0)
        worker.budget.forget(self)
        worker.unregister(self, listener: listener.index)
        worker.budget.wakeIfRoom()
    }

    // MARK: back-pressure

    /// Reads on a side only while the buffers it would fill are below the limit, and while the
    /// worker's buffers are within its share of max_buffer_total (BufferBudget).
    private func updateInterest() {
        guard phase != .closed else { return }
        let max = limits.maxBuffer
        let budget = worker.budget
        budget.report(&heldBytes, client.inputLength + client.outputLength + (upstream.map { $0.inputLength + $0.outputLength } ?? 0))
        let room = !budget.isOver
        switch phase {
        case .closing:
            // Input is discarded while closing; reading it holds nothing.
            client.setReading(true)
        default:
            let upstreamFull = (upstream?.outputLength ?? 0) >= max
            client.setReading(room && client.inputLength < max && !upstreamFull)
        }
        if let up = upstream {
            up.setReading(room && phase == .forwarding && client.outputLength < max)
        }
        if !room && phase != .closing {
            budget.pause(self)
            squeezed = true
        }
        if phase == .forwarding && response != nil { watchClientBacklog(full: client.outputLength >= max) }
        if phase == .forwarding && response == nil && !requestBody.isDone {
            watchRequestBody(upstreamFull: (upstream?.outputLength ?? 0) >= max)
        }
        budget.wakeIfRoom()
    }

    /// While the backend takes none of the body (its buffer full) the stall is the backend's: the
    /// response deadline runs. Otherwise the client must keep the body coming (client_body).
    private func watchRequestBody(upstreamFull: Bool) {
        if upstreamFull && deadline == .body {
            arm(.response, timeouts.backendResponse)
        } else if !upstreamFull && deadline == .response {
            bodyProgress = 0
            arm(.body, timeouts.clientBody)
        }
    }

    /// While the client's buffered response is full the backend is not read, so the response
    /// deadline would blame the backend for the client's stall; the client-write deadline runs
    /// instead until the client takes its bytes.
    private func watchClientBacklog(full: Bool) {
        if full && deadline == .response {
            outputAtWriteDeadline = client.outputLength
            arm(.clientWrite, timeouts.clientWrite)
        } else if !full && deadline == .clientWrite {
            arm(.response, timeouts.backendResponse)
        }
    }

    // MARK: access log

    private func accessLog(_ req: HTTPRequestHead, status: Int, note: String? = nil) {
        guard let log = worker.shared.accessLogger else { return }
        let micros = (monotonicNanos() &- requestStartNanos) / 1000
        var meta: Logger.Metadata = [
            "listener": "\(listener.config.name)",
            "client": "\(clientAddress)",
            "method": "\(req.method)",
            "target": "\(req.target)",
            "status": "\(status)",
            "backend": "\(backend.map { "\($0.address)" } ?? "-")",
            "bytes_out": "\(responseBytes)",
            "duration_us": "\(micros)",
            "retries": "\(attempts)",
        ]
        if client.isTLS {
            meta["tls_version"] = "\(client.tlsVersion ?? "-")"
            meta["tls_cipher"] = "\(client.tlsCipher ?? "-")"
        }
        if let note { meta["note"] = "\(note)" }
        log.info("request", metadata: meta)
    }
}

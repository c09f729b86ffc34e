// One TCP socket driven by two raw libevent events and two evbuffers.
//
// Why not bufferevents: a libevent 2.1 socket bufferevent spends five syscalls per forwarded chunk
// (ioctl FIONREAD, readv, writev and two epoll_ctl as write interest goes on and off;
// notes/libevent-swift.md section 10). Here a read is one `recv`/`recvmsg` into reserved evbuffer
// space, a write is tried at once with `send`/`sendmsg` over the buffer's chains and the write
// event is armed only when the kernel would block, so a keep-alive request costs one syscall per
// direction on each side (the socket calls also skip readv/writev's VFS file-position locking).
//
// Threading: an Endpoint lives on one worker loop and is touched only from that loop's thread.
// Ownership: the session (or a worker's idle pool) holds the Endpoint strongly; libevent holds an
// unretained pointer, valid because `close()` frees both events before the Endpoint can go away.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import COpenSSL

/// Receives an Endpoint's events. Called on the endpoint's loop thread only.
protocol EndpointDelegate: AnyObject {
    /// A non-blocking connect finished successfully.
    func endpointDidConnect(_ endpoint: Endpoint)
    /// New bytes are in `input`, or the peer closed (`endpoint.isEOF`).
    func endpointDidRead(_ endpoint: Endpoint)
    /// `output` became empty after the write event had to be armed.
    func endpointDidDrain(_ endpoint: Endpoint)
    /// The connect or a read/write failed with `errno`.
    func endpointDidFail(_ endpoint: Endpoint, errno: Int32)
}

final class Endpoint {
    let fd: Int32
    let input: OpaquePointer
    let output: OpaquePointer
    private var readEvent: OpaquePointer?
    private var writeEvent: OpaquePointer?
    unowned(unsafe) var delegate: EndpointDelegate?

    private(set) var isReading = false
    private(set) var isWriteArmed = false
    private(set) var isConnecting = false
    /// The peer sent FIN (a read returned 0).
    private(set) var isEOF = false
    private(set) var isClosed = false
    /// Set once `shutdown(SHUT_WR)` was sent.
    private(set) var didShutdownWrite = false
    /// Free for the owner: e.g. when an idle pooled connection was parked.
    var parkedAt: UInt64 = 0
    /// Free for the owner: index of the backend this upstream connection goes to.
    var backendID: Int = -1
    /// TLS (server side): the session once the first byte showed a handshake; nil for plain
    /// sockets, whose paths below are unchanged.
    private var ssl: OpaquePointer?
    /// Set by `startTLS` until the first byte arrives.
    private var tlsPending: TLSContextSet?
    /// The contexts `ssl` came from, kept while it lives: OpenSSL's callbacks (SNI, tickets) find
    /// the set through unretained pointers, and a reload may replace the listener's set meanwhile.
    private var tlsContexts: TLSContextSet?
    private var tlsStats: TLSStats?
    private var tlsHandshakeDone = false
    /// A TLS read needed to write (handshake flight against a full socket buffer).
    private var tlsReadWantsWrite = false
    /// Server side: the records OpenSSL wrote, not yet sent (`EvbufferBIO`). Part of `outputLength`.
    private var ciphertext: OpaquePointer?
    /// close_notify goes out after the last byte of `output` (`closeTLSWhenFlushed`).
    private var closeNotifyWanted = false
    private var closeNotifySent = false
    private(set) var isTLS = false
    /// Client side (to a backend): why the handshake failed, for the log and metrics.
    private(set) var tlsFailure: String?
    private var tlsIsClient = false

    /// Wraps an open, non-blocking socket. The Endpoint owns `fd` from now on.
    init(fd: Int32, base: OpaquePointer, connecting: Bool = false) {
        self.fd = fd
        self.input = evbuffer_new()!
        self.output = evbuffer_new()!
        self.isConnecting = connecting
        let me = Unmanaged.passUnretained(self).toOpaque()
        readEvent = event_new(base, fd, evs(EV_READ | EV_PERSIST), Endpoint.onReadable, me)
        writeEvent = event_new(base, fd, evs(EV_WRITE | EV_PERSIST), Endpoint.onWritable, me)
        if connecting { armWrite() }
    }

    deinit { close() }

    /// Closes the socket and frees events and buffers. Idempotent.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let e = readEvent { event_free(e); readEvent = nil }
        if let e = writeEvent { event_free(e); writeEvent = nil }
        evbuffer_free(input)
        evbuffer_free(output)
        if let ssl {
            SSL_free(ssl)
            self.ssl = nil
        }
        if let c = ciphertext {
            // Records already made (an alert, close_notify, deferred tickets): one try.
            if evbuffer_get_length(c) > 0 { _ = sendOnce(c) }
            evbuffer_free(c)
            ciphertext = nil
        }
        _ = Glibc.close(fd)
        delegate = nil
    }

    /// Terminates TLS on this accepted socket: the first byte decides between a handshake and
    /// plain HTTP sent to a TLS port (answered 400 and closed).
    func startTLS(_ contexts: TLSContextSet, stats: TLSStats) {
        tlsPending = contexts
        tlsStats = stats
        isTLS = true
    }

    /// TLS to a backend on this (connecting or connected) socket; false if OpenSSL refused.
    func startClientTLS(_ tls: BackendTLS, host: String) -> Bool {
        guard let s = tls.newSSL(fd: fd, host: host) else { return false }
        ssl = s
        isTLS = true
        tlsIsClient = true
        return true
    }

    private func recordClientFailure(_ ssl: OpaquePointer) {
        guard tlsIsClient, tlsFailure == nil else { return }
        let v = SSL_get_verify_result(ssl)
        tlsFailure = v != X509_V_OK
            ? "certificate not trusted: \(String(cString: X509_verify_cert_error_string(v)))" : "handshake failed: \(tlsErrorText())"
    }

    var tlsHandshakeComplete: Bool { tlsHandshakeDone }

    /// The negotiated protocol and cipher, once the handshake is done.
    var tlsVersion: String? { ssl.flatMap { tlsHandshakeDone ? String(cString: SSL_get_version($0)) : nil } }
    var tlsCipher: String? {
        ssl.flatMap { tlsHandshakeDone ? SSL_get_current_cipher($0).flatMap { c in SSL_CIPHER_get_name(c).map { String(cString: $0) } } : nil }
    }

    /// First byte on a TLS port: 0x16 starts a handshake; anything else is answered 400.
    /// Returns nil to wait for the byte, false when the endpoint failed (the delegate was told),
    /// true to go on reading.
    private func sniffTLS(_ contexts: TLSContextSet) -> Bool? {
        var b: UInt8 = 0
        let r = recv(fd, &b, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if r < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? nil : true }
        if r == 0 { return true }  // EOF: the plain path reports it
        tlsPending = nil
        if b != 0x16 {
            tlsStats?.failed("plain_http")
            let body = "This port speaks TLS: use https:// URLs\n"
            let reply = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            _ = reply.utf8CString.withUnsafeBytes { send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            // Read what the client sent, so closing sends FIN rather than a reset that could
            // destroy the answer on its way; then FIN.
            var sink = [UInt8](repeating: 0, count: 16_384)
            for _ in 0..<4 where sink.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {}
            _ = shutdown(fd, Int32(SHUT_WR))
            setReading(false)
            delegate?.endpointDidFail(self, errno: EPROTO)
            return false
        }
        let buffer = evbuffer_new()!
        guard let s = contexts.newSSL(fd: fd, ciphertext: buffer) else {
            evbuffer_free(buffer)
            tlsStats?.failed("other")
            setReading(false)
            delegate?.endpointDidFail(self, errno: ENOMEM)
            return false
        }
        ssl = s
        ciphertext = buffer
        tlsContexts = contexts
        return true
    }

    var inputLength: Int { evbuffer_get_length(input) }
    /// Bytes queued for the peer: `output`, plus records made from it but not yet sent.
    var outputLength: Int { evbuffer_get_length(output) + (ciphertext.map { evbuffer_get_length($0) } ?? 0) }

    /// Turns read interest on or off; a no-op when unchanged (no epoll_ctl churn).
    func setReading(_ on: Bool) {
        guard !isClosed, on != isReading, let e = readEvent else { return }
        if on {
            if isEOF || isConnecting { return }
            event_add(e, nil)
            // Bytes OpenSSL already read from the socket would never wake the read event.
            if let ssl, SSL_has_pending(ssl) == 1 { event_active(e, EV_READ, 0) }
        } else {
            event_del(e)
        }
        isReading = on
    }

    private func armWrite() {
        guard !isWriteArmed, let e = writeEvent else { return }
        event_add(e, nil)
        isWriteArmed = true
    }

    private func disarmWrite() {
        guard isWriteArmed, let e = writeEvent else { return }
        event_del(e)
        isWriteArmed = false
    }

    /// Appends bytes to `output` (copied).
    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = evbuffer_add(output, $0.baseAddress, $0.count) }
    }

    func append(_ text: StaticString) {
        _ = evbuffer_add(output, text.utf8Start, text.utf8CodeUnitCount)
    }

    /// Writes as much of `output` as the kernel takes now; arms the write event for the rest.
    /// Returns an errno on a hard error (the caller decides what failing means), nil otherwise.
    @discardableResult
    func flush() -> Int32? {
        guard !isClosed, !isConnecting else { return nil }
        if isWriteArmed { return nil }  // the write event will do it
        return writeNow()
    }

    private func writeNow() -> Int32? {
        if let ssl, let ciphertext { return writeTLSBuffered(ssl, ciphertext) }
        if let ssl { return writeTLS(ssl) }
        switch sendAll(output) {
        case .blocked: return nil
        case .failed(let e): return e
        case .sent:
            disarmWrite()
            return nil
        }
    }

    private enum SendOutcome {
        case sent, blocked, failed(Int32)
    }

    /// Sends `buffer` until it is empty, or the kernel would block (the write event is armed).
    private func sendAll(_ buffer: OpaquePointer) -> SendOutcome {
        while evbuffer_get_length(buffer) > 0 {
            let n = sendOnce(buffer)
            if n > 0 {
                evbuffer_drain(buffer, n)
                continue
            }
            let e = errno
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                armWrite()
                return .blocked
            }
            return .failed(n < 0 ? e : EPIPE)
        }
        return .sent
    }

    /// One `sendmsg` of up to 16 chains of `buffer`, without draining it. Socket calls
    /// (send/recv families) skip the VFS file-position locking that writev/readv pay on every call.
    private func sendOnce(_ buffer: OpaquePointer) -> Int {
        var vecs = (iovec(), iovec(), iovec(), iovec(), iovec(), iovec(), iovec(), iovec(),
                    iovec(), iovec(), iovec(), iovec(), iovec(), iovec(), iovec(), iovec())
        return withUnsafeMutableBytes(of: &vecs) { raw in
            let v = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
            let count = min(16, Int(evbuffer_peek(buffer, -1, nil, v, 16)))
            var flags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
            // The last bytes before a clean close: the kernel holds them for the FIN (close
            // follows at once), so both leave in one segment instead of two.
            if closeNotifyWanted { flags |= Int32(MSG_MORE) }
            if count == 1 {
                return retryingEINTR { send(fd, v[0].iov_base, v[0].iov_len, flags) }
            }
            var msg = msghdr()
            msg.msg_iov = v
            msg.msg_iovlen = count
            return retryingEINTR { sendmsg(fd, &msg, flags) }
        }
    }

    /// Acknowledges what was received now instead of with the next answer. HTTP listeners delay
    /// ACKs (`listeningSocket`'s `delayedAck`), which saves one when the answer follows; a request
    /// whose body is still coming needs its ACK at once, or a client with Nagle on that writes the
    /// body separately holds it for the delayed-ACK timer (40 ms). HAProxy does the same.
    func acknowledgeNow() {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// TLS: close_notify follows the last byte of `output` (in the same send when it can), once
    /// the handshake finished; for a clean close. Takes effect on the next write (`flush`).
    func closeTLSWhenFlushed() {
        closeNotifyWanted = true
    }

    /// Sends FIN once `output` is empty (call again after a drain).
    func shutdownWriteWhenFlushed() {
        guard !isClosed, !didShutdownWrite, outputLength == 0, !isConnecting else { return }
        didShutdownWrite = true
        if let ssl, tlsHandshakeDone, !closeNotifySent {
            closeNotifySent = true
            _ = SSL_shutdown(ssl)
            // The alert is all there is to send: one try, the FIN follows it.
            if let c = ciphertext, evbuffer_get_length(c) > 0 {
                let n = sendOnce(c)
                if n > 0 { evbuffer_drain(c, n) }
            }
        }
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads once (recv/recvmsg) into reserved space at the end of `input`. Returns bytes read, 0 on EOF,
    /// -1 would-block, or -2 with the errno in `lastErrno`.
    private func readOnce() -> Int {
        if let ssl { return readTLS(ssl) }
        // libevent defines evbuffer_iovec as struct iovec, so the reserved vectors go to readv as is.
        var vecs = (iovec(), iovec())
        return withUnsafeMutableBytes(of: &vecs) { raw in
            let v = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
            let count = evbuffer_reserve_space(input, 65_536, v, 2)
            guard count > 0 else {
                lastErrno = ENOMEM
                return -2
            }
            let r: Int
            if count == 1 {
                r = retryingEINTR { recv(fd, v[0].iov_base, v[0].iov_len, Int32(MSG_DONTWAIT)) }
            } else {
                var msg = msghdr()
                msg.msg_iov = v
                msg.msg_iovlen = Int(count)
                r = retryingEINTR { recvmsg(fd, &msg, Int32(MSG_DONTWAIT)) }
            }
            if r <= 0 {
                lastErrno = errno
                evbuffer_commit_space(input, v, 0)
                if r == 0 { return 0 }
                return lastErrno == EAGAIN || lastErrno == EWOULDBLOCK ? -1 : -2
            }
            // Commit exactly what was read, across the vectors used.
            var left = r
            var used: Int32 = 0
            for i in 0..<Int(count) where left > 0 {
                let take = min(left, v[i].iov_len)
                v[i].iov_len = take
                left -= take
                used += 1
            }
            evbuffer_commit_space(input, v, used)
            return r
        }
    }
    private var lastErrno: Int32 = 0

    // MARK: TLS

    /// SSL_read into reserved space until OpenSSL has nothing buffered. Same results as `readOnce`.
    private func readTLS(_ ssl: OpaquePointer) -> Int {
        var total = 0
        while true {
            var vec = iovec()
            guard evbuffer_reserve_space(input, 16_384, &vec, 1) > 0 else {
                lastErrno = ENOMEM
                return -2
            }
            ERR_clear_error()
            let r = SSL_read(ssl, vec.iov_base, Int32(min(vec.iov_len, Int(Int32.max))))
            if !tlsHandshakeDone && SSL_is_init_finished(ssl) == 1 {
                tlsHandshakeDone = true
                tlsStats?.handshakes.add(1)
            }
            if r > 0 {
                vec.iov_len = Int(r)
                evbuffer_commit_space(input, &vec, 1)
                total += Int(r)
                // With read-ahead, OpenSSL may hold bytes the socket no longer shows as readable.
                if SSL_has_pending(ssl) == 1 { continue }
                return total
            }
            evbuffer_commit_space(input, &vec, 0)
            let e = errno
            switch SSL_get_error(ssl, r) {
            case SSL_ERROR_WANT_READ:
                return total > 0 ? total : -1
            case SSL_ERROR_WANT_WRITE:
                tlsReadWantsWrite = true
                armWrite()
                return total > 0 ? total : -1
            case SSL_ERROR_ZERO_RETURN:
                return total > 0 ? total : 0
            case SSL_ERROR_SYSCALL where (ERR_peek_error() == 0 && (r == 0 || e == 0)) || e == ECONNRESET || e == EPIPE,
                SSL_ERROR_SSL where ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING:
                ERR_clear_error()
                // The peer closed without close_notify: an EOF, as with plain TCP.
                if !tlsHandshakeDone { tlsStats?.failed("eof") }
                return total > 0 ? total : 0
            default:
                if !tlsHandshakeDone {
                    let reason = tlsFailureReason()
                    tlsStats?.failed(reason)
                    recordClientFailure(ssl)
                }
                ERR_clear_error()
                lastErrno = e != 0 ? e : EPROTO
                return total > 0 ? total : -2
            }
        }
    }

    /// Server side: encrypts `output` into `ciphertext` while under 64 KiB of records wait, then
    /// sends them; close_notify joins the last record when wanted.
    private func writeTLSBuffered(_ ssl: OpaquePointer, _ cipher: OpaquePointer) -> Int32? {
        while true {
            encrypt: while evbuffer_get_length(cipher) < 65_536 {
                let length = evbuffer_get_length(output)
                if length == 0 {
                    if closeNotifyWanted, !closeNotifySent, tlsHandshakeDone {
                        closeNotifySent = true
                        ERR_clear_error()
                        _ = SSL_shutdown(ssl)
                    }
                    break
                }
                switch writeRecord(ssl) {
                case .wrote:
                    continue
                case .wantRead:
                    // A handshake in progress: the client's answer must be read first.
                    setReading(true)
                    break encrypt
                case .wantWrite:
                    break encrypt
                case .failed(let e):
                    ERR_clear_error()
                    return e
                }
            }
            guard evbuffer_get_length(cipher) > 0 else { break }
            switch sendAll(cipher) {
            case .blocked: return nil
            case .failed(let e): return e
            case .sent: break
            }
            if evbuffer_get_length(output) == 0 { break }
        }
        disarmWrite()
        return nil
    }

    /// After a read that brought data: whether records OpenSSL made while reading may wait for the
    /// next write. After a TLS 1.3 handshake they are session tickets (or a key update), which can
    /// ride with the response; handshake flights and TLS 1.2's last flight must go now. A read
    /// that finished the handshake but brought no request sends them at once: a client that
    /// writes its Finished and its request separately with Nagle on (ab, many libraries) holds
    /// the request until its Finished is acknowledged, and a ticket held back here would leave
    /// that to the 40 ms delayed ACK.
    private var mayDeferCiphertext: Bool {
        guard let ssl, ciphertext != nil, tlsHandshakeDone, !closeNotifyWanted else { return false }
        return evbuffer_get_length(output) == 0 && SSL_version(ssl) == TLS1_3_VERSION
    }

    private enum RecordWrite {
        case wrote, wantRead, wantWrite, failed(Int32)
    }

    /// One SSL_write of up to 16 KiB from the front of `output`; what it wrote is drained.
    private func writeRecord(_ ssl: OpaquePointer) -> RecordWrite {
        let n = min(evbuffer_get_length(output), 16_384)
        guard let p = evbuffer_pullup(output, n) else { return .failed(ENOMEM) }
        ERR_clear_error()
        let r = SSL_write(ssl, p, Int32(n))
        if r > 0 {
            evbuffer_drain(output, Int(r))
            return .wrote
        }
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        default: return .failed(EPIPE)
        }
    }

    /// Client side (to a backend): SSL_write straight to the socket.
    private func writeTLS(_ ssl: OpaquePointer) -> Int32? {
        while evbuffer_get_length(output) > 0 {
            switch writeRecord(ssl) {
            case .wrote:
                continue
            case .wantWrite:
                armWrite()
                return nil
            case .wantRead:
                // A handshake in progress: the answer must be read for the write to go on.
                setReading(true)
                return nil
            case .failed(let e):
                recordClientFailure(ssl)
                ERR_clear_error()
                return e
            }
        }
        disarmWrite()
        return nil
    }

    // MARK: libevent callbacks

    private static let onReadable: event_callback_fn = { _, _, ctx in
        let ep = Unmanaged<Endpoint>.fromOpaque(ctx!).takeUnretainedValue()
        ep.handleReadable()
    }

    private static let onWritable: event_callback_fn = { _, _, ctx in
        let ep = Unmanaged<Endpoint>.fromOpaque(ctx!).takeUnretainedValue()
        ep.handleWritable()
    }

    private func handleReadable() {
        guard !isClosed else { return }
        if let contexts = tlsPending {
            switch sniffTLS(contexts) {
            case nil, false?: return
            case true?: break
            }
        }
        let n = readOnce()
        // A read may finish a client handshake that a write was waiting for. Records OpenSSL
        // made while reading wait for the response only if the read brought a request to answer.
        if ssl != nil, n != -2, outputLength > 0, !isWriteArmed, !(n > 0 && mayDeferCiphertext), let err = writeNow() {
            setReading(false)
            delegate?.endpointDidFail(self, errno: err)
            return
        }
        switch n {
        case -1:
            return
        case -2:
            setReading(false)
            delegate?.endpointDidFail(self, errno: lastErrno)
        case 0:
            isEOF = true
            setReading(false)
            delegate?.endpointDidRead(self)
        default:
            delegate?.endpointDidRead(self)
        }
    }

    private func handleWritable() {
        guard !isClosed else { return }
        if tlsReadWantsWrite {
            tlsReadWantsWrite = false
            if outputLength == 0 { disarmWrite() }
            handleReadable()
            guard !isClosed else { return }
            if outputLength == 0 { return }
        }
        if isConnecting {
            let err = socketError(fd)
            disarmWrite()
            isConnecting = false
            if err != 0 {
                delegate?.endpointDidFail(self, errno: err)
                return
            }
            delegate?.endpointDidConnect(self)
            return
        }
        if let err = writeNow() {
            disarmWrite()
            delegate?.endpointDidFail(self, errno: err)
            return
        }
        if !isWriteArmed { delegate?.endpointDidDrain(self) }
    }
}

/// Writes a head straight into an evbuffer's reserved space: no intermediate array, no copy.
struct EvbufferHeadSink: HeadSink {
    let buffer: OpaquePointer
    init(_ buffer: OpaquePointer) { self.buffer = buffer }
    mutating func write(capacity: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Int) {
        var vec = iovec()
        guard evbuffer_reserve_space(buffer, capacity, &vec, 1) == 1, let base = vec.iov_base else { return }
        vec.iov_len = fill(base.assumingMemoryBound(to: UInt8.self))
        evbuffer_commit_space(buffer, &vec, 1)
    }
}


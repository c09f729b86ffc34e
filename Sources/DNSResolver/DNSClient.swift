// The libevent shell of `DNSQuery`: sockets and timers on the control loop, nothing else.
// A fresh non-blocking, connected UDP socket per attempt (kernel-random source port), TCP for
// truncated answers, at most 16 datagrams read per readiness (a reply flood cannot starve the
// loop), every descriptor closed when the query finishes or is cancelled.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// Cancels a running query; its completion is then never called.
public final class DNSQueryHandle {
    fileprivate var pending: PendingQuery?
    public func cancel() {
        pending?.close()
        pending = nil
    }
}

public final class DNSClient {
    private let base: OpaquePointer
    private let nameservers: [(host: String, port: UInt16)]
    private let counters = DNSClientCounters()
    /// Replies dropped by this client's queries so far: malformed, or not an answer to the
    /// question asked (wrong ID, question, QR or opcode, bigger than advertised).
    public var droppedReplies: Int { counters.droppedReplies }

    public init(base: OpaquePointer, nameservers: [(host: String, port: UInt16)]) {
        self.base = base
        self.nameservers = nameservers
    }

    @discardableResult
    public func resolve(
        _ question: DNSQuestion, settings: DNSQuery.Settings, completion: @escaping (DNSQueryResult) -> Void
    ) -> DNSQueryHandle {
        let handle = DNSQueryHandle()
        let p = PendingQuery(
            base: base, nameservers: nameservers, query: DNSQuery(question: question, settings: settings),
            counters: counters
        ) { [weak handle] result in
            handle?.pending = nil
            completion(result)
        }
        handle.pending = p
        p.start()
        return handle
    }
}

private func evFlags(_ v: Int32) -> Int16 { Int16(truncatingIfNeeded: v) }

private func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

fileprivate final class DNSClientCounters {
    var droppedReplies = 0
}

fileprivate final class PendingQuery {
    private let base: OpaquePointer
    private let nameservers: [(host: String, port: UInt16)]
    private var query: DNSQuery
    private let counters: DNSClientCounters
    private var counted = false
    private var completion: ((DNSQueryResult) -> Void)?
    private var fd: Int32 = -1
    private var isTCP = false
    private var outgoing: [UInt8] = []
    private var readEvent: OpaquePointer?
    private var writeEvent: OpaquePointer?
    private var timer: OpaquePointer?
    private var rng = SystemRandomNumberGenerator()
    /// Keeps itself alive while running (the handle holds it weakly through its owner).
    private var selfRef: PendingQuery?

    init(base: OpaquePointer, nameservers: [(host: String, port: UInt16)], query: DNSQuery,
         counters: DNSClientCounters, completion: @escaping (DNSQueryResult) -> Void) {
        self.base = base
        self.nameservers = nameservers
        self.query = query
        self.counters = counters
        self.completion = completion
    }

    deinit { closeTransport(); if let t = timer { event_free(t) } }

    func start() {
        selfRef = self
        timer = event_new(base, -1, 0, PendingQuery.onTimer, Unmanaged.passUnretained(self).toOpaque())
        guard !nameservers.isEmpty else {
            finish(.failure(.timeout))
            return
        }
        perform(query.start(now: monotonicNow(), random: &rng))
    }

    func close() {
        if !counted {
            counted = true
            counters.droppedReplies += query.droppedReplies
        }
        completion = nil
        closeTransport()
        if let t = timer { event_del(t) }
        selfRef = nil
    }

    private func finish(_ result: DNSQueryResult) {
        let done = completion
        close()
        done?(result)
    }

    private func perform(_ actions: [DNSQuery.Action]) {
        for action in actions {
            guard completion != nil else { return }
            switch action {
            case .sendUDP(let server, let bytes):
                open(server: server, tcp: false, bytes: bytes)
            case .sendTCP(let server, let bytes):
                open(server: server, tcp: true, bytes: bytes)
            case .setDeadline(let at):
                let now = monotonicNow()
                let ns = at > now ? at - now : 0
                var tv = timeval(tv_sec: Int(ns / 1_000_000_000), tv_usec: Int((ns % 1_000_000_000) / 1000))
                if let t = timer { event_add(t, &tv) }
            case .finish(let result):
                finish(result)
                return
            }
        }
    }

    private func closeTransport() {
        if let e = readEvent { event_free(e) }
        if let e = writeEvent { event_free(e) }
        readEvent = nil
        writeEvent = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func open(server: Int, tcp: Bool, bytes: [UInt8]) {
        closeTransport()
        isTCP = tcp
        let ns = nameservers[server % nameservers.count]
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        let family: Int32
        if ns.host.contains(":") {
            family = AF_INET6
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = ns.port.bigEndian
            guard inet_pton(AF_INET6, ns.host, &sa.sin6_addr) == 1 else { return transportFailed() }
            withUnsafeBytes(of: sa) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            family = AF_INET
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = ns.port.bigEndian
            guard inet_pton(AF_INET, ns.host, &sa.sin_addr) == 1 else { return transportFailed() }
            withUnsafeBytes(of: sa) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let type = (tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue))
            | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fd = socket(family, type, 0)
        guard fd >= 0 else { return transportFailed() }
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        guard rc == 0 || errno == EINPROGRESS else { return transportFailed() }
        let me = Unmanaged.passUnretained(self).toOpaque()
        readEvent = event_new(base, fd, evFlags(EV_READ | EV_PERSIST), PendingQuery.onReadable, me)
        if let e = readEvent { event_add(e, nil) }
        outgoing = bytes
        if tcp {
            writeEvent = event_new(base, fd, evFlags(EV_WRITE), PendingQuery.onWritable, me)
            if let e = writeEvent { event_add(e, nil) }
        } else {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n != bytes.count { transportFailed() }
        }
    }

    private func transportFailed() {
        perform(query.transportFailed(now: monotonicNow(), random: &rng))
    }

    private static let onTimer: event_callback_fn = { _, _, ctx in
        let p = Unmanaged<PendingQuery>.fromOpaque(ctx!).takeUnretainedValue()
        p.perform(p.query.deadlineReached(now: monotonicNow(), random: &p.rng))
    }

    private static let onWritable: event_callback_fn = { _, _, ctx in
        Unmanaged<PendingQuery>.fromOpaque(ctx!).takeUnretainedValue().writeTCP()
    }

    private static let onReadable: event_callback_fn = { _, _, ctx in
        Unmanaged<PendingQuery>.fromOpaque(ctx!).takeUnretainedValue().readable()
    }

    private func writeTCP() {
        while !outgoing.isEmpty && fd >= 0 {
            let n = outgoing.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                if let e = writeEvent { event_add(e, nil) }
                return
            }
            guard n > 0 else { return transportFailed() }
            outgoing.removeFirst(n)
        }
    }

    private func readable() {
        var buf = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<16 {
            guard fd >= 0, completion != nil else { return }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return }
                return transportFailed()
            }
            let now = monotonicNow()
            if isTCP {
                if n == 0 { return transportFailed() }
                perform(query.tcpReceived(Array(buf[0..<n]), now: now, random: &rng))
            } else {
                perform(query.udpReceived(Array(buf[0..<n]), now: now, random: &rng))
            }
        }
    }
}

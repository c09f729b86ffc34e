// Peer sync (DESIGN.md sections 6 and 7): the admin overrides (weights, states, shares, swaps) go
// to the other host of the pair, so after a failover the new master routes as the old one did.
//
// The state is small and whole, so the protocol exchanges whole states, never deltas: a
// connection carries one signed frame each way. The side that connects sends its state; the side
// that accepts answers with its own; each side keeps whichever is newer by (version, node).
// `version` is the time of the last change in milliseconds, kept strictly increasing, and saved
// in the state file, so a restarted host neither wins with an old state nor loses a new one.
// A host exchanges after every change and every `exchangeInterval`, which also heals a peer that
// was down or partitioned when the change was made.
//
// Frame: `LBDSYNC1 <version> <node> <length> <hmac>\n` + `length` bytes of JSON, where hmac is
// HMAC-SHA256 over everything before it (the header without the hmac, a newline, the body),
// keyed with the shared key file, as lowercase hex. A replayed frame is harmless: it is never
// newer than what the receiver already holds.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import COpenSSL
import Foundation
import Logging

/// A state's place in time: later version wins; equal versions are ordered by node name.
struct SyncVersion: Codable, Comparable, Sendable, CustomStringConvertible {
    var version: UInt64
    var node: String
    static func < (a: SyncVersion, b: SyncVersion) -> Bool { (a.version, a.node) < (b.version, b.node) }
    var description: String { "\(version)@\(node)" }
}

/// The signed frame: building and checking, without I/O.
enum PeerSyncFrame {
    static let magic = "LBDSYNC1"
    static let maxBody = 1 << 20
    static let maxHeader = 256

    enum Parse: Equatable {
        case incomplete
        case invalid(String)
        case frame(SyncVersion, body: [UInt8], length: Int)
    }

    static func encode(_ v: SyncVersion, body: [UInt8], key: [UInt8]) -> [UInt8] {
        let head = Array("\(magic) \(v.version) \(v.node) \(body.count)".utf8)
        let mac = hmac(key: key, head + [0x0A] + body)
        return head + Array(" \(hex(mac))\n".utf8) + body
    }

    /// Checks the frame at the start of `bytes`.
    static func parse(_ bytes: UnsafeRawBufferPointer, key: [UInt8]) -> Parse {
        guard let nl = bytes.prefix(maxHeader + 1).firstIndex(of: 0x0A) else {
            return bytes.count > maxHeader ? .invalid("header too long") : .incomplete
        }
        let words = bytes[..<nl].split(separator: 0x20, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard words.count == 5, words[0] == magic else { return .invalid("not an lbd sync frame") }
        guard let version = UInt64(words[1]), !words[2].isEmpty, words[2].utf8.count <= 64,
            let length = Int(words[3]), (0...maxBody).contains(length), words[4].utf8.count == 64
        else { return .invalid("malformed header") }
        guard bytes.count >= nl + 1 + length else { return .incomplete }
        let body = Array(bytes[(nl + 1)..<(nl + 1 + length)])
        let head = Array("\(magic) \(version) \(words[2]) \(length)".utf8)
        let expected = Array(hex(hmac(key: key, head + [0x0A] + body)).utf8)
        let got = Array(words[4].utf8)
        let same = expected.withUnsafeBytes { e in got.withUnsafeBytes { g in CRYPTO_memcmp(e.baseAddress, g.baseAddress, 64) } }
        guard same == 0 else { return .invalid("bad signature") }
        return .frame(SyncVersion(version: version, node: words[2]), body: body, length: nl + 1 + length)
    }

    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var outLength: UInt32 = 0
        key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count, &out, &outLength)
            }
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// What the server gives peer sync: its state, and a place to apply the peer's.
protocol PeerSyncHost: AnyObject {
    /// The current overrides as JSON, with their version.
    func syncState() -> (SyncVersion, [UInt8])
    /// Applies the peer's newer state; returns nil or the reason it was refused.
    func applyPeerState(_ version: SyncVersion, body: [UInt8]) -> String?
}

/// Counters for `/v1/vrrp` and the metrics.
struct PeerSyncStats: Sendable {
    var exchanges: UInt64 = 0
    var failures: UInt64 = 0
    var applied: UInt64 = 0
    var refused: UInt64 = 0
    var badFrames: UInt64 = 0
    var lastExchangeAt: Date?
    var lastError: String?
    var lastAppliedVersion: String?
}

final class PeerSync {
    static let exchangeInterval = Duration.seconds(2)
    static let connectionDeadline = Duration.seconds(5)

    let config: PeerSyncConfig
    private let key: [UInt8]
    private let base: OpaquePointer
    private let logger: Logger
    private unowned let host: PeerSyncHost
    private var listener: OpaquePointer?
    private var timer: OpaquePointer?
    private var outgoing: SyncConnection?
    private var incoming: [ObjectIdentifier: SyncConnection] = [:]
    /// Another exchange was asked for while one was running.
    private var pending = false
    private(set) var stats = PeerSyncStats()
    /// The last refusal logged, so a state that keeps being refused is logged once.
    private var lastRefusal: String?

    init(base: OpaquePointer, config: PeerSyncConfig, host: PeerSyncHost, logger: Logger) throws(SystemCallError) {
        self.base = base
        self.config = config
        self.host = host
        self.logger = logger
        guard let data = FileManager.default.contents(atPath: config.keyFile) else {
            throw SystemCallError(call: "read failover.vrrp.peer_sync.key_file \(config.keyFile)", errno: ENOENT)
        }
        let line = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first ?? ""
        let key = line.trimmingCharacters(in: .whitespaces)
        guard key.utf8.count >= 16 else {
            throw SystemCallError(
                call: "failover.vrrp.peer_sync.key_file \(config.keyFile): the key must be at least 16 characters", errno: EINVAL)
        }
        self.key = Array(key.utf8)
    }

    deinit {
        if let l = listener { evconnlistener_free(l) }
        if let t = timer { event_free(t) }
    }

    func start() throws(SystemCallError) {
        guard let sa = SockAddr(config.listen) else { throw SystemCallError(call: "bind \(config.listen)", errno: EINVAL) }
        let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC)
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let l = sa.withSockaddr { p, len in evconnlistener_new_bind(base, PeerSync.onAccept, ctx, flags, 16, p, Int32(len)) }
        guard let l else { throw SystemCallError(call: "bind peer_sync \(config.listen)", errno: errno) }
        listener = l
        timer = event_new(base, -1, evs(EV_PERSIST), PeerSync.onTimer, ctx)
        var tv = Self.exchangeInterval.timeval
        event_add(timer, &tv)
        logger.info("peer sync listening", metadata: ["listen": "\(config.listen)", "peer": "\(config.peer)"])
        exchange()
    }

    private static let onTimer: event_callback_fn = { _, _, ctx in
        Unmanaged<PeerSync>.fromOpaque(ctx!).takeUnretainedValue().exchange()
    }

    private static let onAccept: evconnlistener_cb = { _, fd, _, _, ctx in
        let sync = Unmanaged<PeerSync>.fromOpaque(ctx!).takeUnretainedValue()
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let c = SyncConnection(endpoint: Endpoint(fd: fd, base: sync.base), sync: sync, outgoing: false)
        sync.incoming[ObjectIdentifier(c)] = c
        c.start()
    }

    /// Sends our state to the peer now (after a change), or as soon as the running exchange ends.
    func exchange() {
        guard outgoing == nil else {
            pending = true
            return
        }
        guard let sa = SockAddr(config.peer) else { return }
        let endpoint: Endpoint
        do {
            switch try startConnect(to: sa) {
            case .connected(let fd): endpoint = Endpoint(fd: fd, base: base)
            case .inProgress(let fd): endpoint = Endpoint(fd: fd, base: base, connecting: true)
            }
        } catch {
            failed("connect \(config.peer): \(error)")
            return
        }
        let c = SyncConnection(endpoint: endpoint, sync: self, outgoing: true)
        outgoing = c
        c.start()
        c.sendState()
    }

    fileprivate var eventBase: OpaquePointer { base }

    fileprivate func frameForState() -> [UInt8] {
        let (version, body) = host.syncState()
        return PeerSyncFrame.encode(version, body: body, key: key)
    }

    fileprivate func parse(_ bytes: UnsafeRawBufferPointer) -> PeerSyncFrame.Parse { PeerSyncFrame.parse(bytes, key: key) }

    /// A frame from the peer: apply it if it is newer than ours.
    fileprivate func received(_ version: SyncVersion, body: [UInt8]) {
        stats.exchanges += 1
        stats.lastExchangeAt = Date()
        stats.lastError = nil
        let (mine, _) = host.syncState()
        guard mine < version, version.version > 0 else { return }
        if let reason = host.applyPeerState(version, body: body) {
            stats.refused += 1
            let text = "\(version): \(reason)"
            if lastRefusal != text {
                lastRefusal = text
                logger.error("peer sync: the peer's state was refused", metadata: ["version": "\(version)", "reason": "\(reason)"])
            }
            return
        }
        stats.applied += 1
        stats.lastAppliedVersion = version.description
        logger.notice("peer sync: applied the peer's admin state", metadata: ["version": "\(version)"])
    }

    fileprivate func badFrame(_ reason: String) {
        stats.badFrames += 1
        logger.warning("peer sync: frame dropped", metadata: ["reason": "\(reason)"])
    }

    fileprivate func failed(_ reason: String) {
        stats.failures += 1
        if stats.lastError != reason {
            logger.warning("peer sync: exchange failed", metadata: ["peer": "\(config.peer)", "reason": "\(reason)"])
        }
        stats.lastError = reason
    }

    fileprivate func closed(_ c: SyncConnection) {
        if c === outgoing {
            outgoing = nil
            if pending {
                pending = false
                exchange()
            }
        } else {
            incoming[ObjectIdentifier(c)] = nil
        }
    }
}

/// One exchange: the connecting side writes its frame and reads the answer; the accepting side
/// reads a frame and answers with its own.
private final class SyncConnection: EndpointDelegate {
    private let endpoint: Endpoint
    private unowned let sync: PeerSync
    private let outgoing: Bool
    private var timer: OpaquePointer?
    private var done = false
    private var answered = false

    init(endpoint: Endpoint, sync: PeerSync, outgoing: Bool) {
        self.endpoint = endpoint
        self.sync = sync
        self.outgoing = outgoing
    }

    deinit { if let t = timer { event_free(t) } }

    func start() {
        endpoint.delegate = self
        endpoint.setReading(true)
        timer = event_new(sync.eventBase, -1, 0, SyncConnection.onTimeout, Unmanaged.passUnretained(self).toOpaque())
        var tv = PeerSync.connectionDeadline.timeval
        if let t = timer { event_add(t, &tv) }
    }

    private static let onTimeout: event_callback_fn = { _, _, ctx in
        let c = Unmanaged<SyncConnection>.fromOpaque(ctx!).takeUnretainedValue()
        if c.outgoing { c.sync.failed("no answer within \(PeerSync.connectionDeadline)") }
        c.finish()
    }

    func sendState() {
        endpoint.append(sync.frameForState())
        if let e = endpoint.flush() {
            fail(e)
        }
    }

    func endpointDidConnect(_ endpoint: Endpoint) {
        // Reading could not be turned on while connecting.
        endpoint.setReading(true)
        if let e = endpoint.flush() { fail(e) }
    }

    func endpointDidRead(_ endpoint: Endpoint) {
        guard !done else { return }
        let n = min(endpoint.inputLength, PeerSyncFrame.maxBody + PeerSyncFrame.maxHeader + 1)
        let parsed: PeerSyncFrame.Parse
        if n > 0, let p = evbuffer_pullup(endpoint.input, n) {
            parsed = sync.parse(UnsafeRawBufferPointer(start: p, count: n))
        } else {
            parsed = .incomplete
        }
        switch parsed {
        case .incomplete:
            if endpoint.isEOF {
                if outgoing { sync.failed("the peer closed without answering") }
                finish()
            }
        case .invalid(let reason):
            sync.badFrame(reason)
            if outgoing { sync.failed("bad answer: \(reason)") }
            finish()
        case .frame(let version, let body, _):
            sync.received(version, body: body)
            if outgoing {
                finish()
            } else {
                // Answer with our state, which may have just become the peer's.
                answered = true
                endpoint.setReading(false)
                sendState()
                if endpoint.outputLength == 0 { finish() }
            }
        }
    }

    func endpointDidDrain(_ endpoint: Endpoint) {
        if answered && endpoint.outputLength == 0 { finish() }
    }

    func endpointDidFail(_ endpoint: Endpoint, errno: Int32) { fail(errno) }

    private func fail(_ errno: Int32) {
        if outgoing { sync.failed(String(cString: strerror(errno))) }
        finish()
    }

    private func finish() {
        guard !done else { return }
        done = true
        if let t = timer { event_del(t) }
        endpoint.close()
        sync.closed(self)
    }
}

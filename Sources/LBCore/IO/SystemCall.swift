// The one place where LBCore calls into the C library for sockets. Every call retries EINTR,
// reports EAGAIN/EINPROGRESS as "would block" to the caller, and throws the rest as a
// `SystemCallError` carrying errno and the call's name (STYLE.md section 1, "Thin libevent shell").

#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// A failed system call: which call, and the errno it left.
public struct SystemCallError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var errno: Int32
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Runs `body` until it stops failing with EINTR. Returns the result, or -1 with `errno` set.
@inline(__always)
func retryingEINTR(_ body: () -> Int) -> Int {
    while true {
        let r = body()
        if r == -1 && errno == EINTR { continue }
        return r
    }
}

/// A resolved socket address ready for `connect`/`bind`: the bytes of a `sockaddr_in` or `sockaddr_in6`.
public struct SockAddr: Sendable, Hashable {
    public var storage: sockaddr_storage
    public var length: socklen_t

    public init?(_ address: SocketAddress) {
        var ss = sockaddr_storage()
        if address.isIPv6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = address.port.bigEndian
            guard inet_pton(AF_INET6, address.host, &sin6.sin6_addr) == 1 else { return nil }
            withUnsafeBytes(of: sin6) { src in
                withUnsafeMutableBytes(of: &ss) { $0.copyMemory(from: src) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = address.port.bigEndian
            guard inet_pton(AF_INET, address.host, &sin.sin_addr) == 1 else { return nil }
            withUnsafeBytes(of: sin) { src in
                withUnsafeMutableBytes(of: &ss) { $0.copyMemory(from: src) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        storage = ss
    }

    public var family: Int32 { Int32(storage.ss_family) }

    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    public static func == (a: SockAddr, b: SockAddr) -> Bool {
        guard a.length == b.length else { return false }
        return withUnsafeBytes(of: a.storage) { ra in
            withUnsafeBytes(of: b.storage) { rb in memcmp(ra.baseAddress!, rb.baseAddress!, Int(a.length)) == 0 }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<Int(length)])) }
    }

    /// Numeric text of a peer address given by the kernel (`127.0.0.1`, `::1`), without the port.
    public static func hostText(_ sa: UnsafePointer<sockaddr>) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                var a = p.pointee.sin_addr
                _ = inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
            }
        case AF_INET6:
            sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                var a = p.pointee.sin6_addr
                _ = inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
            }
        default:
            return "unknown"
        }
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Outcome of a non-blocking connect.
enum ConnectStart {
    case connected(Int32)
    case inProgress(Int32)
}

/// Opens a non-blocking, close-on-exec TCP socket with TCP_NODELAY and starts connecting it.
func startConnect(to address: SockAddr) throws(SystemCallError) -> ConnectStart {
    let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
    setNoDelay(fd)
    let r = address.withSockaddr { sa, len in retryingEINTR { Int(connect(fd, sa, len)) } }
    if r == 0 { return .connected(fd) }
    let e = errno
    if e == EINPROGRESS { return .inProgress(fd) }
    close(fd)
    throw SystemCallError(call: "connect", errno: e)
}

func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// The pending error of a socket (after a non-blocking connect), 0 when none.
func socketError(_ fd: Int32) -> Int32 {
    var err: Int32 = 0
    var len = socklen_t(MemoryLayout<Int32>.size)
    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return errno }
    return err
}

/// libevent's `short` event flags from the `Int32` macros.
@inline(__always) func evs(_ flags: Int32) -> Int16 { Int16(truncatingIfNeeded: flags) }

extension Duration {
    /// As a `timeval` for `event_add`.
    var timeval: Glibc.timeval {
        let (s, atto) = components
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int(atto / 1_000_000_000_000))
    }
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}

/// A listening TCP socket on `address`, non-blocking and close-on-exec, with SO_REUSEADDR,
/// SO_REUSEPORT (one per worker) and TCP_NODELAY (which accepted sockets inherit). `freeBind`
/// sets IP_FREEBIND / IPV6_FREEBIND, so a listener on a virtual IP binds before this host owns
/// the address (the VRRP backup). `delayedAck` (for protocols where the server always answers,
/// HTTP) turns off the quick ACKs of a new connection: the kernel otherwise sends a bare ACK for
/// the request (and for a TLS ClientHello) just before the answer, which then carries it anyway.
/// Set after listen(), it is inherited by accepted sockets; a slow answer still gets the ACK from
/// the delayed-ACK timer.
func listeningSocket(_ address: SockAddr, backlog: Int32, freeBind: Bool, delayedAck: Bool = false) throws(SystemCallError) -> Int32 {
    let family = address.withSockaddr { p, _ in Int32(p.pointee.sa_family) }
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
    var one: Int32 = 1
    let size = socklen_t(MemoryLayout<Int32>.size)
    var ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size) == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) == 0
    // Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per connection.
    ok = ok && setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, size) == 0
    if ok && freeBind {
        ok = family == AF_INET6
            ? setsockopt(fd, Int32(IPPROTO_IPV6), 78 /* IPV6_FREEBIND */, &one, size) == 0
            : setsockopt(fd, Int32(IPPROTO_IP), 15 /* IP_FREEBIND */, &one, size) == 0
    }
    ok = ok && address.withSockaddr { p, len in Glibc.bind(fd, p, len) } == 0 && listen(fd, backlog) == 0
    var zero: Int32 = 0
    if ok && delayedAck { ok = setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &zero, size) == 0 }
    guard ok else {
        let e = errno
        close(fd)
        throw SystemCallError(call: "bind", errno: e)
    }
    return fd
}

// The worker's listening socket: what an accepted connection gets from it without a syscall of
// its own. Real sockets on 127.0.0.1, port 0.

#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import LBCore

@Suite struct ListeningSocketTests {
    @Test func acceptedConnectionsInheritTCPNoDelay() throws {
        let (listener, client, accepted) = try connectedPair(delayedAck: false)
        defer { [listener, client, accepted].forEach { close($0) } }
        #expect(option(accepted, TCP_NODELAY) == 1)
        #expect(option(client, TCP_NODELAY) == 0, "a plain socket has Nagle on, so the check above means something")
    }

    /// An HTTP listener's connections start without quick ACKs (getsockopt TCP_QUICKACK reads 0 in
    /// the kernel's "pingpong" mode), so the answer carries the ACK of the request; a TCP-mode
    /// listener's keep the kernel's default.
    @Test(arguments: [true, false]) func delayedAckIsInheritedWhenAsked(_ delayed: Bool) throws {
        let (listener, client, accepted) = try connectedPair(delayedAck: delayed)
        defer { [listener, client, accepted].forEach { close($0) } }
        #expect(option(accepted, TCP_QUICKACK) == (delayed ? 0 : 1))
    }

    private func connectedPair(delayedAck: Bool) throws -> (listener: Int32, client: Int32, accepted: Int32) {
        let listener = try listeningSocket(
            SockAddr(SocketAddress(host: "127.0.0.1", port: 0))!, backlog: 8, freeBind: false, delayedAck: delayedAck)
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutableBytes(of: &bound) { getsockname(listener, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let connected = withUnsafeBytes(of: bound) { connect(client, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        #expect(connected == 0)
        // The listener is non-blocking; the connection is queued once connect returned.
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        return (listener, client, accepted)
    }

    private func option(_ fd: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, Int32(IPPROTO_TCP), name, &value, &size)
        return value
    }
}

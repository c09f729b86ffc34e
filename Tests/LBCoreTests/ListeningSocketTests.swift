// The worker's listening socket: what an accepted connection gets from it without a syscall of
// its own. Real sockets on 127.0.0.1, port 0.

#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import LBCore

@Suite struct ListeningSocketTests {
    @Test func acceptedConnectionsInheritTCPNoDelay() throws {
        let listener = try listeningSocket(SockAddr(SocketAddress(host: "127.0.0.1", port: 0))!, backlog: 8, freeBind: false)
        defer { close(listener) }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutableBytes(of: &bound) { getsockname(listener, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) }

        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafeBytes(of: bound) { connect(client, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        #expect(connected == 0)

        // The listener is non-blocking; the connection is queued once connect returned.
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        defer { close(accepted) }
        #expect(noDelay(accepted) == 1)
        #expect(noDelay(client) == 0, "a plain socket has Nagle on, so the check above means something")
    }

    private func noDelay(_ fd: Int32) -> Int32 {
        var value: Int32 = -1
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &size)
        return value
    }
}

// The HTTP/1.1 client behind `lbd ctl`: one request per connection over a blocking POSIX socket,
// because the admin API answers one request and closes (README "Admin API"). No FoundationNetworking.

import Foundation
import LBCore

#if canImport(Glibc)
import Glibc
#endif

/// One exchange with the admin API: connect (bounded by ``connectTimeout``), send the request,
/// read until the server closes (bounded by ``replyTimeout`` per read), parse the status line.
enum AdminClient {
    /// Why no answer came back; `lbd ctl` exits 2 on any of these.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// An answer: the status code, the status line's reason phrase and the body.
    struct Reply {
        var status: Int
        var reason: String
        var body: Data
    }

    static let connectTimeout: Int32 = 3_000  // ms
    static let replyTimeout = 10  // s; a write fsyncs the state file before it answers

    static func send(
        to address: SocketAddress, method: String, path: String, headers: [(String, String)], body: Data
    ) throws(Failure) -> Reply {
        guard let sa = SockAddr(address) else { throw Failure(description: "\(address) is not a numeric address") }
        let fd = socket(sa.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        defer { close(fd) }
        try connect(fd, sa)

        var tv = timeval(tv_sec: replyTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method != "GET" { head += "Content-Length: \(body.count)\r\n" }
        let request = Array((head + "\r\n").utf8) + Array(body)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("send") }
            sent += n
        }

        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw Failure(description: "no complete answer within \(replyTimeout) s")
            }
            guard n > 0 else { throw failure("recv") }
            response += buffer[0..<n]
        }
        return try parse(response)
    }

    /// Connects with a deadline: non-blocking connect, then poll, so an address that drops
    /// packets fails after ``connectTimeout`` with a message that says so.
    private static func connect(_ fd: Int32, _ sa: SockAddr) throws(Failure) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if sa.withSockaddr({ Glibc.connect(fd, $0, $1) }) != 0 {
            guard errno == EINPROGRESS || errno == EINTR else { throw failure("connect") }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var ready: Int32
            repeat { ready = poll(&pfd, 1, connectTimeout) } while ready < 0 && errno == EINTR
            guard ready > 0 else {
                if ready == 0 { throw Failure(description: "connect: no answer within \(connectTimeout / 1000) s") }
                throw failure("poll")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else { throw Failure(description: "connect: \(String(cString: strerror(err)))") }
        }
        _ = fcntl(fd, F_SETFL, flags)
    }

    /// Splits status line, head and body; the body stops at Content-Length when there is one.
    static func parse(_ response: [UInt8]) throws(Failure) -> Reply {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = response.indices.first(where: { response[$0...].starts(with: separator) }) else {
            throw Failure(description: response.isEmpty ? "the server closed without answering" : "incomplete answer")
        }
        let lines = String(decoding: response[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let words = lines[0].split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), let status = Int(words[1]) else {
            throw Failure(description: "not an HTTP answer: \(lines[0].prefix(80))")
        }
        var body = response[(end + 4)...]
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length",
                let length = Int(parts[1].trimmingCharacters(in: .whitespaces)), length < body.count
            {
                body = body.prefix(length)
            }
        }
        return Reply(status: status, reason: words.count > 2 ? String(words[2]) : "", body: Data(body))
    }

    private static func failure(_ call: String) -> Failure {
        Failure(description: "\(call): \(String(cString: strerror(errno)))")
    }
}

// Serialization of the heads lbd forwards: the request towards the backend and the response towards
// the client. Both drop hop-by-hop fields and the fields a `Connection` header nominates
// (RFC 9110 §7.6.1), never the framing fields or Host (a nominated Content-Length would turn the body
// into a second request: smuggling). Lines are rebuilt as `name: value CRLF` from the parsed offsets,
// so OWS is normalized and line endings are always CRLF. Each head is written into one exactly-sized
// allocation through `HeadWriter`, whose every write is bounds-checked.

extension HTTPRequestHead {
    /// The head to send upstream, CRLF-terminated, ending with an empty line.
    ///
    /// - Request line `method SP target SP HTTP/1.1` from ``method`` and ``target`` (which the proxy
    ///   may have rewritten; they must stay free of SP, CR and LF).
    /// - The client's fields in order, except hop-by-hop ones (`Connection`, `Keep-Alive`,
    ///   `Proxy-Connection`, `TE`, `Trailer`, `Upgrade` — so no `h2c` or websocket upgrade —,
    ///   `Proxy-Authenticate`, `Proxy-Authorization`), fields nominated in `Connection` (but never
    ///   `Host`, `Content-Length`, `Transfer-Encoding`), `Expect` (lbd answers 100-continue itself),
    ///   `X-Forwarded-Proto`, and names that read `x-forwarded-for`/`x-forwarded-proto` once `_` is
    ///   taken for `-` (bad-inputs H25).
    /// - `Transfer-Encoding: chunked` in place of the client's when ``framing`` is `.chunked` (the
    ///   proxy re-encodes chunked bodies); `Content-Length` as sent.
    /// - `Host: <host>` if the client sent none (HTTP/1.0; HTTP/1.1 upstream requires it).
    /// - `X-Forwarded-For: <client's XFF values>, <clientAddress>`, or only `clientAddress` when the
    ///   client sent none or nominated it in `Connection` (H48), then `X-Forwarded-Proto`.
    ///
    /// `clientAddress` and `forwardedProto` come from lbd itself and must not contain CR or LF.
    public func upstreamHead(clientAddress: String, forwardedProto: String) -> [UInt8] {
        var sink = ArrayHeadSink()
        writeUpstreamHead(clientAddress: clientAddress, forwardedProto: forwardedProto, to: &sink)
        return sink.bytes
    }

    /// ``upstreamHead(clientAddress:forwardedProto:)`` written through `sink` (e.g. straight into an
    /// evbuffer's reserved space, with no intermediate array).
    public func writeUpstreamHead<Sink: HeadSink>(clientAddress: String, forwardedProto: String, to sink: inout Sink) {
        var method = method
        var target = target
        var host = host
        var clientAddress = clientAddress
        var forwardedProto = forwardedProto
        let chunked = framing == .chunked
        storage.withBytesAndFields { buf, fields in
            // Each kept field line grows by at most one byte (": " for ":"), the rest is fixed text.
            let bound =
                buf.count + fields.count + method.utf8.count + target.utf8.count + host.utf8.count
                + clientAddress.utf8.count + forwardedProto.utf8.count + 96
            HeadWriter.write(capacity: bound, to: &sink) { out in
                guard let p = buf.baseAddress else { return }
                let checkNominated = nominatesFields(p, fields)
                out.write(&method)
                out.write(HTTPByte.space)
                out.write(&target)
                out.write(" HTTP/1.1\r\n")
                var sawHost = false
                var wroteTransferEncoding = false
                var forwardXFF = true
                for f in fields {
                    switch f.kind {
                    case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .proxyAuthenticate,
                        .proxyAuthorization, .expect, .xForwardedProto, .forwardedUnderscored:
                        continue
                    case .xForwardedFor:
                        if checkNominated && forwardXFF && isNominated(p, fields, f) { forwardXFF = false }
                        continue
                    case .transferEncoding:
                        if chunked && !wroteTransferEncoding {
                            out.write("Transfer-Encoding: chunked\r\n")
                            wroteTransferEncoding = true
                        }
                        continue
                    case .host:
                        sawHost = true
                    case .contentLength:
                        break
                    case .other:
                        if checkNominated && isNominated(p, fields, f) { continue }
                    }
                    out.writeField(p, f)
                }
                if !sawHost {
                    out.write("Host: ")
                    out.write(&host)
                    out.write("\r\n")
                }
                out.write("X-Forwarded-For: ")
                if forwardXFF {
                    for f in fields where f.kind == .xForwardedFor && f.valueEnd > f.valueStart {
                        out.write(p, Int(f.valueStart), Int(f.valueEnd))
                        out.write(", ")
                    }
                }
                out.write(&clientAddress)
                out.write("\r\nX-Forwarded-Proto: ")
                out.write(&forwardedProto)
                out.write("\r\n\r\n")
            }
        }
    }
}

extension HTTPResponseHead {
    /// Whether lbd must close the client connection after this response whatever else holds: the
    /// body runs until the backend closes, or is chunked and the client speaks HTTP/1.0 (so it
    /// is sent raw and delimited by the close).
    public func forcesClientClose(clientVersionMinor: Int) -> Bool {
        framing == .untilClose || (framing == .chunked && clientVersionMinor == 0)
    }

    /// The head to send to the client, CRLF-terminated, ending with an empty line.
    ///
    /// - Status line `HTTP/1.1 <status> <reason as sent>`.
    /// - The backend's fields in order, except hop-by-hop ones and those nominated in `Connection`
    ///   (never `Content-Length`/`Transfer-Encoding`).
    /// - `Transfer-Encoding: chunked` only for an HTTP/1.1 client and a response that declared it
    ///   (not on 1xx/204); an HTTP/1.0 client gets the decoded body delimited by the close.
    /// - `Content-Length` as sent, except for CL+TE responses (B7), where it is dropped.
    /// - Final responses: `Connection: close` when `closeAfter` or ``forcesClientClose(clientVersionMinor:)``;
    ///   otherwise `Connection: keep-alive` for an HTTP/1.0 client. Interim (1xx) heads get neither.
    public func clientHead(clientVersionMinor: Int, closeAfter: Bool) -> [UInt8] {
        var sink = ArrayHeadSink()
        writeClientHead(clientVersionMinor: clientVersionMinor, closeAfter: closeAfter, to: &sink)
        return sink.bytes
    }

    /// ``clientHead(clientVersionMinor:closeAfter:)`` written through `sink`.
    public func writeClientHead<Sink: HeadSink>(clientVersionMinor: Int, closeAfter: Bool, to sink: inout Sink) {
        let keepChunked = clientVersionMinor >= 1 && declaresChunked && !isInterim && status != 204
        let close = closeAfter || forcesClientClose(clientVersionMinor: clientVersionMinor)
        var statusText = String(status)
        storage.withBytesAndFields { buf, fields in
            let bound = buf.count + fields.count + statusText.utf8.count + 64
            HeadWriter.write(capacity: bound, to: &sink) { out in
                guard let p = buf.baseAddress else { return }
                let checkNominated = nominatesFields(p, fields)
                out.write("HTTP/1.1 ")
                out.write(&statusText)
                out.write(HTTPByte.space)
                out.write(p, Int(reasonStart), Int(reasonEnd))
                out.write("\r\n")
                var wroteTransferEncoding = false
                for f in fields {
                    switch f.kind {
                    case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .proxyAuthenticate,
                        .proxyAuthorization:
                        continue
                    case .transferEncoding:
                        if keepChunked && !wroteTransferEncoding {
                            out.write("Transfer-Encoding: chunked\r\n")
                            wroteTransferEncoding = true
                        }
                        continue
                    case .contentLength:
                        if hadContentLengthAndChunked { continue }
                    case .host, .expect, .xForwardedFor, .xForwardedProto, .forwardedUnderscored, .other:
                        if checkNominated && isNominated(p, fields, f) { continue }
                    }
                    out.writeField(p, f)
                }
                if !isInterim {
                    if close {
                        out.write("Connection: close\r\n")
                    } else if clientVersionMinor == 0 {
                        out.write("Connection: keep-alive\r\n")
                    }
                }
                out.write("\r\n")
            }
        }
    }
}

/// Where a serialized head goes. `write` is called once with the most bytes the head can take; the
/// sink provides at least that many writable bytes, calls `fill` on them and keeps the number of
/// bytes `fill` returns. The proxy's sink writes straight into an evbuffer's reserved space.
public protocol HeadSink {
    mutating func write(capacity: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Int)
}

/// Collects a head into a new array (tests, and callers that want the bytes).
public struct ArrayHeadSink: HeadSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func write(capacity: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Int) {
        bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            initialized = buffer.baseAddress.map { fill($0) } ?? 0
        }
    }
}

/// Appends to a fixed-capacity buffer. A capacity computed too small traps on the write that would
/// overflow; it never writes out of bounds.
private struct HeadWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count = 0

    /// Writes at most `capacity` bytes through `sink`, filled by `body`.
    static func write<Sink: HeadSink>(capacity: Int, to sink: inout Sink, _ body: (inout HeadWriter) -> Void) {
        sink.write(capacity: capacity) { base in
            var writer = HeadWriter(base: base, capacity: capacity)
            body(&writer)
            return writer.count
        }
    }

    private init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @inline(__always)
    mutating func write(_ source: UnsafePointer<UInt8>, _ start: Int, _ end: Int) {
        let n = end - start
        precondition(n >= 0 && n <= capacity - count, "head writer overflow")
        (base + count).initialize(from: source + start, count: n)
        count += n
    }

    @inline(__always)
    mutating func write(_ byte: UInt8) {
        precondition(count < capacity, "head writer overflow")
        (base + count).initialize(to: byte)
        count += 1
    }

    @inline(__always)
    mutating func write(_ literal: StaticString) {
        write(literal.utf8Start, 0, literal.utf8CodeUnitCount)
    }

    /// `inout` so that `withUTF8` can reach the bytes without copying a native string.
    @inline(__always)
    mutating func write(_ string: inout String) {
        string.withUTF8 { bytes in
            guard let start = bytes.baseAddress else { return }
            write(start, 0, bytes.count)
        }
    }

    /// `name: value CRLF` for `f`: the name as sent, the value OWS-trimmed.
    @inline(__always)
    mutating func writeField(_ p: UnsafePointer<UInt8>, _ f: HTTPField) {
        write(p, Int(f.nameStart), Int(f.nameEnd))
        write(HTTPByte.colon)
        write(HTTPByte.space)
        write(p, Int(f.valueStart), Int(f.valueEnd))
        write(HTTPByte.cr)
        write(HTTPByte.lf)
    }
}

/// Whether a `Connection` field lists an option other than `close`, `keep-alive` and `upgrade` (which
/// name only fields lbd drops anyway): only then must each field be checked with `isNominated`.
private func nominatesFields(_ p: UnsafePointer<UInt8>, _ fields: UnsafeBufferPointer<HTTPField>) -> Bool {
    for c in fields where c.kind == .connection {
        var found = false
        HTTPHeadScanner.forEachListElement(p, Int(c.valueStart), Int(c.valueEnd)) { s, e in
            if s < e && !HTTPHeadScanner.equals(p, s, e, "close") && !HTTPHeadScanner.equals(p, s, e, "keep-alive")
                && !HTTPHeadScanner.equals(p, s, e, "upgrade")
            {
                found = true
            }
        }
        if found { return true }
    }
    return false
}

/// Whether some `Connection` field lists `f`'s name among its options (case-insensitive).
private func isNominated(_ p: UnsafePointer<UInt8>, _ fields: UnsafeBufferPointer<HTTPField>, _ f: HTTPField) -> Bool {
    for c in fields where c.kind == .connection {
        var found = false
        HTTPHeadScanner.forEachListElement(p, Int(c.valueStart), Int(c.valueEnd)) { s, e in
            if !found && HTTPHeadScanner.equalRanges(p, s, e, Int(f.nameStart), Int(f.nameEnd)) { found = true }
        }
        if found { return true }
    }
    return false
}

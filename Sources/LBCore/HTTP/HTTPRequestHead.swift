// The strict HTTP/1.1 request-head parser (RFC 9112 §2–3, §5–6; RFC 9110 §7.2, §8.6, §10.1.1).
// Stricter than the anchors wherever they disagree (shared/notes/bad-inputs.md A and B): a proxy
// more lenient than its backends is where request smuggling happens.

/// A complete, validated request head, as received from a client.
///
/// Produced only by ``HTTPRequestParser/parse(_:limits:)``. Holds one copy of the head bytes and
/// the offsets of its fields; ``upstreamHead(clientAddress:forwardedProto:)`` rewrites it for the
/// backend. A value type with no references to the caller's buffer: keep it after draining.
public struct HTTPRequestHead: Sendable {
    /// The method as sent, one of GET HEAD POST PUT DELETE OPTIONS PATCH TRACE.
    public var method: String
    /// The request target as sent: origin-form (`/a?b`), absolute-form (`http://h/a`, forwarded as
    /// is) or `*` (OPTIONS only). Printable ASCII only, no `#` fragment.
    public var target: String
    /// 0 for `HTTP/1.0`, 1 for `HTTP/1.1` and any later `HTTP/1.x` (RFC 9110 §2.5).
    public var versionMinor: Int
    /// How the request body is delimited: `.none`, `.contentLength` or `.chunked`.
    public var framing: BodyFraming
    /// Whether the client connection may carry another request after this one's response.
    /// HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`.
    public var keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body (HTTP/1.0 expectations and those on
    /// bodiless requests are ignored, RFC 9110 §10.1.1). lbd never forwards `Expect`; the proxy decides
    /// when to send `100 Continue`.
    public var expectContinue: Bool
    /// The `Host` value, or the absolute-form authority of an HTTP/1.0 request without `Host`;
    /// "" for HTTP/1.0 without either. Only reg-name, IP-literal and port characters.
    public var host: String
    /// Bytes of the buffer this head occupied, leading empty lines included: drain this many.
    public var headLength: Int
    var storage: HTTPHeadStorage

    /// True for `HEAD`: the response to it has no body whatever its framing fields say.
    public var isHEAD: Bool { method == "HEAD" }

    /// Methods that may be retried on another connection (RFC 9110 §9.2.2).
    public var isIdempotent: Bool {
        switch method {
        case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE": true
        default: false
        }
    }

    /// Field names and values as received, in order (values OWS-trimmed). For logs and tests;
    /// allocates.
    public var fields: [(name: String, value: String)] { storage.namesAndValues }

    /// The first value of the field named `name` (case-insensitive), or nil. Allocates.
    public func firstValue(forName name: String) -> String? { storage.firstValue(forName: name) }
}

/// Parses request heads. Pure and thread-agnostic: any thread may call it.
public enum HTTPRequestParser {
    /// Parses the first request head in `bytes`, everything buffered so far from the client.
    ///
    /// Returns `.incomplete` until the head's final CRLF CRLF is buffered, `.complete` with a head
    /// whose ``HTTPRequestHead/headLength`` bytes may be drained (anything after is body or the next
    /// request), or `.failed` with the status to answer before closing. Leading empty lines are
    /// skipped (RFC 9112 §2.2) and count toward `limits.maxHeaderBytes`. Limits are enforced on
    /// incomplete input too: a request line longer than `maxRequestLine` fails with 414 and a head
    /// longer than `maxHeaderBytes` with 431 as soon as that many bytes are buffered; a complete but
    /// bad request line fails before the rest of the head arrives. Each call is linear in the bytes
    /// buffered (an eight-bytes-a-step search for CRLF CRLF), with no allocation until a head is complete.
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: HTTPLimits) -> HTTPParseResult<HTTPRequestHead> {
        guard let raw = bytes.baseAddress, bytes.count > 0 else { return .incomplete }
        let p = raw.assumingMemoryBound(to: UInt8.self)
        let n = bytes.count
        let maxHead = min(max(limits.maxHeaderBytes, 0), HTTPHeadScanner.maxHeadBytes)
        var start = 0
        while start < n && p[start] == HTTPByte.cr {
            guard start + 1 < n else { return start + 1 >= maxHead ? .failed(.headersTooLarge) : .incomplete }
            guard p[start + 1] == HTTPByte.lf else { return .failed(.badRequest("bare CR")) }
            start += 2
        }
        if start >= maxHead { return .failed(.headersTooLarge) }
        if start == n { return .incomplete }
        if p[start] == HTTPByte.lf { return .failed(.badRequest("bare LF")) }

        let scanTo = min(n, maxHead)
        do throws(HTTPError) {
            // One pass when the buffer ends with CRLF CRLF (a client that sent one whole request):
            // then the head surely ends at its first empty line, or is bad before it.
            if scanTo == n && n - start >= 4 && HTTPHeadScanner.endsWithEmptyLine(p, n) {
                let lineScanEnd = limits.maxRequestLine < n - start - 2 ? start + limits.maxRequestLine + 2 : n
                let lf = HTTPHeadScanner.firstLF(p, from: start, to: lineScanEnd)
                guard lf >= 0, lf - 1 - start <= limits.maxRequestLine else { return .failed(.uriTooLong) }
                if let head = try parseHead(p, start: start, firstLF: lf, limit: n, limits: limits) {
                    return .complete(head)
                }
            }
            let scan = HTTPHeadScanner.scanForHeadEnd(p, from: start, to: scanTo)
            guard scan.firstLF >= 0 else {
                var lineSoFar = scanTo - start
                if scanTo == n && p[n - 1] == HTTPByte.cr { lineSoFar -= 1 }
                if lineSoFar > limits.maxRequestLine { return .failed(.uriTooLong) }
                return n >= maxHead ? .failed(.headersTooLarge) : .incomplete
            }
            if scan.firstLF - 1 - start > limits.maxRequestLine { return .failed(.uriTooLong) }
            if scan.end < 0 && scan.bareLF < 0 {
                if n >= maxHead { return .failed(.headersTooLarge) }
                _ = try requestLine(p, start, scan.firstLF)
                return .incomplete
            }
            let limit = scan.end >= 0 ? scan.end : scan.bareLF + 1
            guard let head = try parseHead(p, start: start, firstLF: scan.firstLF, limit: limit, limits: limits)
            else { return .incomplete }
            return .complete(head)
        } catch {
            return .failed(error)
        }
    }

    /// The parts of a valid request line (RFC 9112 §3).
    struct RequestLine {
        var method: String
        var targetStart: Int
        var targetEnd: Int
        var versionMinor: Int
        /// The authority of an absolute-form target, or -1 / -1.
        var authorityStart = -1
        var authorityEnd = -1
    }

    /// Validates `method SP request-target SP HTTP-version CRLF` ending at the LF at `lf`.
    /// Order of verdicts: syntax (400), the h2 preface (400), version (505), method (405, 501),
    /// target form (400).
    static func requestLine(_ p: UnsafePointer<UInt8>, _ start: Int, _ lf: Int) throws(HTTPError) -> RequestLine {
        guard lf > start, p[lf - 1] == HTTPByte.cr else { throw .badRequest("bare LF") }
        let lineEnd = lf - 1
        var i = start
        while i < lineEnd && p[i].isTokenChar { i += 1 }
        let methodEnd = i
        guard i < lineEnd else { throw .badRequest("request line without target") }
        guard methodEnd > start, p[i] == HTTPByte.space else { throw .badRequest("invalid method") }
        i += 1
        let targetStart = i
        while i < lineEnd && p[i] > HTTPByte.space && p[i] < HTTPByte.del && p[i] != 0x23 { i += 1 }
        let targetEnd = i
        guard targetEnd > targetStart else { throw .badRequest("empty request target") }
        guard i < lineEnd else { throw .badRequest("request line without HTTP version") }
        guard p[i] == HTTPByte.space else {
            throw .badRequest(p[i] == 0x23 ? "fragment in request target" : "invalid character in request target")
        }
        i += 1
        if same(p, start, methodEnd, "PRI") { throw .badRequest("HTTP/2 connection preface") }
        guard lineEnd - i == 8, same(p, i, i + 5, "HTTP/"), p[i + 5] &- 0x30 < 10, p[i + 6] == 0x2E,
            p[i + 7] &- 0x30 < 10
        else { throw .badRequest("invalid HTTP version") }
        guard p[i + 5] == 0x31 else { throw .versionNotSupported }
        var line = RequestLine(
            method: try method(p, start, methodEnd), targetStart: targetStart, targetEnd: targetEnd,
            versionMinor: p[i + 7] == 0x30 ? 0 : 1)

        let first = p[targetStart]
        if first == 0x2F { return line }
        if first == 0x2A && targetEnd - targetStart == 1 {
            guard line.method == "OPTIONS" else { throw .badRequest("asterisk-form target without OPTIONS") }
            return line
        }
        var authorityStart = -1
        if targetEnd - targetStart > 7 && HTTPHeadScanner.equals(p, targetStart, targetStart + 7, "http://") {
            authorityStart = targetStart + 7
        } else if targetEnd - targetStart > 8 && HTTPHeadScanner.equals(p, targetStart, targetStart + 8, "https://") {
            authorityStart = targetStart + 8
        }
        guard authorityStart >= 0 else { throw .badRequest("invalid request target form") }
        var k = authorityStart
        while k < targetEnd && p[k] != 0x2F && p[k] != 0x3F && p[k] != 0x23 {
            guard p[k].isHostChar else { throw .badRequest("invalid authority in request target") }
            k += 1
        }
        guard k > authorityStart else { throw .badRequest("empty authority in request target") }
        line.authorityStart = authorityStart
        line.authorityEnd = k
        return line
    }

    /// The known method at `p[start..<end]` (case-sensitive, RFC 9110 §9.1): 405 for CONNECT,
    /// 501 for any other token.
    static func method(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) throws(HTTPError) -> String {
        switch end - start {
        case 3:
            if same(p, start, end, "GET") { return "GET" }
            if same(p, start, end, "PUT") { return "PUT" }
        case 4:
            if same(p, start, end, "POST") { return "POST" }
            if same(p, start, end, "HEAD") { return "HEAD" }
        case 5:
            if same(p, start, end, "PATCH") { return "PATCH" }
            if same(p, start, end, "TRACE") { return "TRACE" }
        case 6:
            if same(p, start, end, "DELETE") { return "DELETE" }
        case 7:
            if same(p, start, end, "OPTIONS") { return "OPTIONS" }
            if same(p, start, end, "CONNECT") { throw .methodNotAllowed }
        default:
            break
        }
        throw .notImplemented("unknown method")
    }

    /// Exact (case-sensitive) comparison with an ASCII literal.
    @inline(__always)
    static func same(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard end - start == n else { return false }
        let l = literal.utf8Start
        for k in 0..<n where p[start + k] != l[k] { return false }
        return true
    }

    /// Parses a head whose end (or first bare LF) is at `limit`; nil if the bytes ran out anyway.
    static func parseHead(
        _ p: UnsafePointer<UInt8>, start: Int, firstLF: Int, limit: Int, limits: HTTPLimits
    ) throws(HTTPError) -> HTTPRequestHead? {
        let line = try requestLine(p, start, firstLF)
        return try withUnsafeTemporaryAllocation(of: HTTPField.self, capacity: HTTPFieldCollector.inlineCapacity) {
            space throws(HTTPError) -> HTTPRequestHead? in
            var collector = HTTPFieldCollector(space)
            defer { collector.deallocate() }
            guard
                let end = try HTTPHeadScanner.scanFields(
                    p, from: firstLF + 1, limit: limit, maxCount: limits.maxHeaderCount, into: &collector)
            else { return nil }
            return try makeHead(p, line, collector.fields, end)
        }
    }

    /// Applies the field semantics (framing, Host, Connection, Expect) and copies the head out.
    static func makeHead(
        _ p: UnsafePointer<UInt8>, _ line: RequestLine, _ fields: UnsafeBufferPointer<HTTPField>, _ end: Int
    ) throws(HTTPError) -> HTTPRequestHead {
        var contentLength: UInt64?
        var codings = TransferCodings()
        var sawTransferEncoding = false
        var hostField: HTTPField?
        var close = false
        var keepAliveOption = false
        var expectContinue = false
        for f in fields {
            let vs = Int(f.valueStart)
            let ve = Int(f.valueEnd)
            switch f.kind {
            case .contentLength:
                guard contentLength == nil else { throw .badRequest("multiple Content-Length") }
                guard let value = HTTPHeadScanner.contentLength(p, vs, ve) else {
                    throw .badRequest("invalid Content-Length")
                }
                contentLength = value
            case .transferEncoding:
                sawTransferEncoding = true
                HTTPHeadScanner.addTransferCodings(p, f, to: &codings)
            case .host:
                guard hostField == nil else { throw .badRequest("multiple Host") }
                for k in vs..<ve where !p[k].isHostChar { throw .badRequest("invalid Host") }
                hostField = f
            case .connection:
                HTTPHeadScanner.addConnectionOptions(p, f, close: &close, keepAlive: &keepAliveOption)
            case .expect:
                guard HTTPHeadScanner.equals(p, vs, ve, "100-continue") else { throw .expectationFailed }
                expectContinue = true
            default:
                break
            }
        }

        let framing: BodyFraming
        if sawTransferEncoding {
            guard contentLength == nil else { throw .badRequest("Content-Length with Transfer-Encoding") }
            guard line.versionMinor == 1 else { throw .badRequest("Transfer-Encoding in HTTP/1.0") }
            guard !codings.hasEmptyElement else { throw .badRequest("empty transfer-coding") }
            guard codings.chunkedCount <= 1 else { throw .badRequest("chunked applied twice") }
            guard codings.chunkedIsLast else { throw .badRequest("chunked is not the final transfer-coding") }
            guard codings.otherCount == 0 else { throw .notImplemented("transfer-coding") }
            framing = .chunked
        } else if let contentLength {
            framing = .contentLength(contentLength)
        } else {
            framing = .none
        }

        var host = ""
        if let hostField {
            if line.authorityStart >= 0 {
                guard
                    HTTPHeadScanner.equalRanges(
                        p, Int(hostField.valueStart), Int(hostField.valueEnd), line.authorityStart, line.authorityEnd)
                else { throw .badRequest("Host differs from target authority") }
            }
            host = string(p, Int(hostField.valueStart), Int(hostField.valueEnd))
        } else if line.versionMinor == 1 {
            throw .badRequest("missing Host")
        } else if line.authorityStart >= 0 {
            host = string(p, line.authorityStart, line.authorityEnd)
        }

        return HTTPRequestHead(
            method: line.method, target: string(p, line.targetStart, line.targetEnd),
            versionMinor: line.versionMinor, framing: framing,
            keepAlive: line.versionMinor == 1 ? !close : keepAliveOption && !close,
            expectContinue: expectContinue && line.versionMinor == 1 && framing != .none
                && framing != .contentLength(0),
            host: host, headLength: end,
            storage: HTTPHeadStorage(copying: p, count: end, fields: fields))
    }

    static func string(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> String {
        HTTPHeadScanner.string(p, start, end)
    }
}

// The backend response-head parser (RFC 9112 §4, §6.3). Backends are trusted less than the RFC
// would like: anything ambiguous is a parse failure, which the proxy turns into a 502 (bad-inputs
// B5–B8), except CL+TE, where chunked wins and the connection is not reused (B7).

/// A complete, validated response head, as received from a backend.
///
/// Produced only by ``HTTPResponseParser/parse(_:requestWasHEAD:maxHeaderBytes:)``; rewritten for the
/// client by ``clientHead(clientVersionMinor:closeAfter:)``. Holds one copy of the head bytes.
public struct HTTPResponseHead: Sendable {
    /// The status code, 100...599 (never 101: lbd forwards no `Upgrade`, so a 101 is a parse error).
    public var status: Int
    /// 0 for `HTTP/1.0`, 1 for `HTTP/1.1` and later `HTTP/1.x`.
    public var versionMinor: Int
    /// How the body is delimited, given the request: `.none` for HEAD, 1xx, 204 and 304;
    /// `.chunked` when `Transfer-Encoding: chunked` (even with a `Content-Length`);
    /// `.contentLength`; else `.untilClose`.
    public var framing: BodyFraming
    /// Whether the backend connection may be reused after this response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `keep-alive`; never for `.untilClose` or CL+TE.
    public var keepAlive: Bool
    /// A 1xx other than 101: the final response follows on the same connection. The proxy swallows
    /// these (capping their count), or relays a `100 Continue` it is waiting for.
    public var isInterim: Bool
    /// Bytes of the buffer this head occupied: drain this many.
    public var headLength: Int
    var reasonStart: Int32
    var reasonEnd: Int32
    /// `Transfer-Encoding: chunked` was present and valid, whatever ``framing`` became.
    var declaresChunked: Bool
    /// Both `Content-Length` and `Transfer-Encoding` were present (B7): the CL is never forwarded.
    var hadContentLengthAndChunked: Bool
    var storage: HTTPHeadStorage

    /// The reason phrase as sent (may be empty).
    public var reason: String { storage.string(reasonStart, reasonEnd) }

    /// Field names and values as received, in order (values OWS-trimmed). Allocates.
    public var fields: [(name: String, value: String)] { storage.namesAndValues }

    /// The first value of the field named `name` (case-insensitive), or nil. Allocates.
    public func firstValue(forName name: String) -> String? { storage.firstValue(forName: name) }
}

/// Parses backend response heads. Pure and thread-agnostic: any thread may call it.
public enum HTTPResponseParser {
    /// Field lines accepted in one response head (HAProxy's default is 101; backends send many
    /// `Set-Cookie`s).
    public static let maxFieldCount = 256

    /// Parses the first response head in `bytes`, everything buffered so far from the backend.
    ///
    /// `requestWasHEAD` makes the framing `.none` whatever the fields say. `maxHeaderBytes` bounds the
    /// whole head, status line included (lbd passes 64 KiB); it fails as soon as that many bytes are
    /// buffered without a complete head. Every failure is `.badRequest(reason)` and means 502 for the
    /// client: a first line not starting `HTTP/1.` (checked on the first bytes), a bad status line,
    /// more than one `Content-Length` (even equal), a bad `Content-Length`, a `Transfer-Encoding`
    /// other than exactly `chunked` or in an HTTP/1.0 response, whitespace before a colon, obs-fold,
    /// NUL/CTL/bare CR/bare LF, more than ``maxFieldCount`` fields, or status 101.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, requestWasHEAD: Bool, maxHeaderBytes: Int
    ) -> HTTPParseResult<HTTPResponseHead> {
        guard let raw = bytes.baseAddress, bytes.count > 0 else { return .incomplete }
        let p = raw.assumingMemoryBound(to: UInt8.self)
        let n = bytes.count
        let maxHead = min(max(maxHeaderBytes, 0), HTTPHeadScanner.maxHeadBytes)
        let prefix: StaticString = "HTTP/1."
        for k in 0..<min(n, prefix.utf8CodeUnitCount) where p[k] != prefix.utf8Start[k] {
            return .failed(.badRequest("not an HTTP/1.x status line"))
        }
        let scanTo = min(n, maxHead)
        let scan = HTTPHeadScanner.scanForHeadEnd(p, from: 0, to: scanTo)
        do throws(HTTPError) {
            if scan.end < 0 && scan.bareLF < 0 {
                if n >= maxHead { throw .badRequest("response head too large") }
                if scan.firstLF >= 0 { _ = try statusLine(p, scan.firstLF) }
                return .incomplete
            }
            let limit = scan.end >= 0 ? scan.end : scan.bareLF + 1
            guard let head = try parseHead(p, firstLF: scan.firstLF, limit: limit, requestWasHEAD: requestWasHEAD)
            else { return .incomplete }
            return .complete(head)
        } catch .headersTooLarge {
            return .failed(.badRequest("too many response fields"))
        } catch {
            return .failed(.badRequest(error.logReason))
        }
    }

    struct StatusLine {
        var status: Int
        var versionMinor: Int
        var reasonStart: Int
        var reasonEnd: Int
    }

    /// `HTTP/1.x SP 3DIGIT SP reason-phrase CRLF` ending at the LF at `lf` (RFC 9112 §4). Also accepts
    /// `HTTP/1.1 200` without the SP before an empty reason, as HAProxy and nginx do.
    static func statusLine(_ p: UnsafePointer<UInt8>, _ lf: Int) throws(HTTPError) -> StatusLine {
        guard lf > 0, p[lf - 1] == HTTPByte.cr else { throw .badRequest("bare LF") }
        let lineEnd = lf - 1
        guard lineEnd >= 12, p[5] == 0x31, p[6] == 0x2E, p[7] &- 0x30 < 10, p[8] == HTTPByte.space
        else { throw .badRequest("invalid status line") }
        let d0 = p[9] &- 0x30
        let d1 = p[10] &- 0x30
        let d2 = p[11] &- 0x30
        guard d0 >= 1, d0 <= 5, d1 < 10, d2 < 10 else { throw .badRequest("invalid status code") }
        let status = Int(d0) * 100 + Int(d1) * 10 + Int(d2)
        guard status != 101 else { throw .badRequest("unexpected 101 Switching Protocols") }
        var reasonStart = lineEnd
        if lineEnd > 12 {
            guard p[12] == HTTPByte.space else { throw .badRequest("invalid status line") }
            reasonStart = 13
            for k in reasonStart..<lineEnd {
                let c = p[k]
                if c == HTTPByte.del || (c < HTTPByte.space && c != HTTPByte.tab) {
                    throw .badRequest("control character in reason phrase")
                }
            }
        }
        return StatusLine(
            status: status, versionMinor: p[7] == 0x30 ? 0 : 1, reasonStart: reasonStart, reasonEnd: lineEnd)
    }

    /// Parses a head whose end (or first bare LF) is at `limit`; nil if the bytes ran out anyway.
    static func parseHead(
        _ p: UnsafePointer<UInt8>, firstLF: Int, limit: Int, requestWasHEAD: Bool
    ) throws(HTTPError) -> HTTPResponseHead? {
        let line = try statusLine(p, firstLF)
        return try withUnsafeTemporaryAllocation(of: HTTPField.self, capacity: HTTPFieldCollector.inlineCapacity) {
            space throws(HTTPError) -> HTTPResponseHead? in
            var collector = HTTPFieldCollector(space)
            defer { collector.deallocate() }
            guard
                let end = try HTTPHeadScanner.scanFields(
                    p, from: firstLF + 1, limit: limit, maxCount: maxFieldCount, into: &collector)
            else { return nil }
            return try makeHead(p, line, collector.fields, end, requestWasHEAD: requestWasHEAD)
        }
    }

    /// Applies the field semantics (framing, Connection) and copies the head out.
    static func makeHead(
        _ p: UnsafePointer<UInt8>, _ line: StatusLine, _ fields: UnsafeBufferPointer<HTTPField>, _ end: Int,
        requestWasHEAD: Bool
    ) throws(HTTPError) -> HTTPResponseHead {
        var contentLength: UInt64?
        var codings = TransferCodings()
        var sawTransferEncoding = false
        var close = false
        var keepAliveOption = false
        for f in fields {
            switch f.kind {
            case .contentLength:
                guard contentLength == nil else { throw .badRequest("multiple Content-Length") }
                guard let value = HTTPHeadScanner.contentLength(p, Int(f.valueStart), Int(f.valueEnd)) else {
                    throw .badRequest("invalid Content-Length")
                }
                contentLength = value
            case .transferEncoding:
                sawTransferEncoding = true
                HTTPHeadScanner.addTransferCodings(p, f, to: &codings)
            case .connection:
                HTTPHeadScanner.addConnectionOptions(p, f, close: &close, keepAlive: &keepAliveOption)
            default:
                break
            }
        }

        let isInterim = line.status < 200
        var keepAlive = line.versionMinor == 1 ? !close : keepAliveOption && !close
        var framing: BodyFraming
        var bothLengths = false
        if sawTransferEncoding {
            guard line.versionMinor == 1 else { throw .badRequest("Transfer-Encoding in HTTP/1.0 response") }
            guard codings.chunkedCount == 1, codings.chunkedIsLast, codings.otherCount == 0,
                !codings.hasEmptyElement
            else { throw .badRequest("unsupported Transfer-Encoding") }
            framing = .chunked
            if contentLength != nil {
                bothLengths = true
                keepAlive = false
            }
        } else if let contentLength {
            framing = .contentLength(contentLength)
        } else {
            framing = .untilClose
        }
        if requestWasHEAD || isInterim || line.status == 204 || line.status == 304 {
            framing = .none
        } else if framing == .untilClose {
            keepAlive = false
        }

        return HTTPResponseHead(
            status: line.status, versionMinor: line.versionMinor, framing: framing, keepAlive: keepAlive,
            isInterim: isInterim, headLength: end, reasonStart: Int32(truncatingIfNeeded: line.reasonStart),
            reasonEnd: Int32(truncatingIfNeeded: line.reasonEnd), declaresChunked: sawTransferEncoding,
            hadContentLengthAndChunked: bothLengths,
            storage: HTTPHeadStorage(copying: p, count: end, fields: fields))
    }
}

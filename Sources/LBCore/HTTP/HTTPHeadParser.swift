// Scanning shared by the request and response parsers: the end-of-head search, field lines, comma
// lists and lengths. Everything works on a raw pointer into the caller's buffer and on offsets; the
// only allocations per head are one byte copy of the head and one field array (see
// `HTTPHeadStorage`). Grammar: RFC 9112 §2.2 (CRLF only here), §5 (field lines), RFC 9110 §5.5–5.6.

/// The bytes the scanner compares against.
enum Byte {
    static let tab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let comma: UInt8 = 0x2C
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let del: UInt8 = 0x7F
}

extension UInt8 {
    /// RFC 9110 §5.6.2 tchar: `!#$%&'*+-.^_`|~`, DIGIT, ALPHA (one 128-bit mask, no table load).
    @inline(__always) var isTokenChar: Bool {
        if self < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> UInt64(self) & 1 != 0 }
        if self < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> UInt64(self &- 64) & 1 != 0 }
        return false
    }

    /// reg-name, IP-literal and port characters (RFC 3986 §3.2.2): unreserved, sub-delims, `:[]%`.
    @inline(__always) var isHostChar: Bool {
        if self < 64 { return (0x2FFF_7FF2_0000_0000 as UInt64) >> UInt64(self) & 1 != 0 }
        if self < 128 { return (0x47FF_FFFE_AFFF_FFFE as UInt64) >> UInt64(self &- 64) & 1 != 0 }
        return false
    }

    /// SP or HTAB (RFC 9110 §5.6.3 OWS).
    @inline(__always) var isOWS: Bool { self == Byte.space || self == Byte.tab }

    /// ASCII lowercase; other bytes unchanged.
    @inline(__always) var asciiLowercased: UInt8 { self &- 0x41 < 26 ? self | 0x20 : self }
}

/// What lbd needs to know about a field name; decided once, while scanning.
enum HTTPFieldKind: UInt8, Sendable {
    case other
    case contentLength, transferEncoding, host, connection, expect
    case keepAlive, proxyConnection, te, trailer, upgrade, proxyAuthenticate, proxyAuthorization
    case xForwardedFor, xForwardedProto
    /// `X_Forwarded_For`, `x-forwarded_proto`…: collides with a field lbd sets once `_` reads as `-`
    /// (bad-inputs H25), so requests drop it.
    case forwardedUnderscored

    /// Fields that describe one connection and never travel past lbd (RFC 9110 §7.6.1, plus the
    /// legacy `Keep-Alive`, `Proxy-Connection` and the proxy-auth pair).
    var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .proxyAuthenticate,
            .proxyAuthorization:
            true
        default: false
        }
    }
}

/// One field line: offsets into the head's byte copy; the value is trimmed of OWS.
struct HTTPField: Sendable {
    var nameStart: Int32
    var nameEnd: Int32
    var valueStart: Int32
    var valueEnd: Int32
    var kind: HTTPFieldKind
}

/// A head's bytes (request or status line, field lines, final CRLF) and its field offsets.
struct HTTPHeadStorage: Sendable {
    var bytes: [UInt8]
    var fields: [HTTPField]

    func string(_ start: Int32, _ end: Int32) -> String {
        bytes.withUnsafeBufferPointer { buf in
            String(decoding: UnsafeBufferPointer(rebasing: buf[Int(start)..<Int(end)]), as: UTF8.self)
        }
    }

    /// Field name and value as written, in order; for logs, tests and routing rules.
    var namesAndValues: [(name: String, value: String)] {
        fields.map { (string($0.nameStart, $0.nameEnd), string($0.valueStart, $0.valueEnd)) }
    }

    /// The value of the first field named `name` (compared case-insensitively), or nil.
    func firstValue(forName name: String) -> String? {
        let wanted = Array(name.utf8)
        for f in fields where Int(f.nameEnd - f.nameStart) == wanted.count {
            var same = true
            for (k, w) in wanted.enumerated()
            where bytes[Int(f.nameStart) + k].asciiLowercased != w.asciiLowercased {
                same = false
                break
            }
            if same { return string(f.valueStart, f.valueEnd) }
        }
        return nil
    }

    /// Copies `count` bytes from `p` into a new array (one allocation, one memcpy).
    static func copy(_ p: UnsafePointer<UInt8>, count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            guard let base = buf.baseAddress else {
                initialized = 0
                return
            }
            base.initialize(from: p, count: count)
            initialized = count
        }
    }
}

/// Where the end-of-head search stopped.
struct HeadScan {
    /// Index of the first LF at or after the start, or -1.
    var firstLF = -1
    /// Index just past the final CRLF CRLF, or -1.
    var end = -1
    /// Index of an LF not preceded by CR, or -1 (the head is already known to be bad).
    var bareLF = -1
}

/// Summary of every `Transfer-Encoding` element seen in one head.
struct TransferCodings {
    var chunkedCount = 0
    var chunkedIsLast = false
    var otherCount = 0
    var hasEmptyElement = false
}

enum HTTPHeadScanner {
    /// Heads are addressed with `Int32` offsets; no configured limit may reach past this.
    static let maxHeadBytes = 1 << 24
    /// RFC 9110 allows any length; lbd caps Content-Length at 2^62 so sums never overflow.
    static let maxContentLength: UInt64 = 1 << 62

    /// Finds the first LF and the end of the head in `p[from..<to]`, eight bytes per step where no
    /// LF is. Stops at the first bare LF. Linear and allocation-free: the proxy may call the parser
    /// on every read of a slowly arriving head.
    static func scanForHeadEnd(_ p: UnsafePointer<UInt8>, from: Int, to: Int) -> HeadScan {
        var scan = HeadScan()
        var i = from
        while i < to {
            if to - i >= 8 {
                let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                let x = w ^ 0x0A0A_0A0A_0A0A_0A0A
                // A byte of x is zero where w holds LF; the lowest flagged byte is exact.
                let zeros = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
                if zeros == 0 {
                    i += 8
                    continue
                }
                i += zeros.trailingZeroBitCount >> 3
            } else if p[i] != Byte.lf {
                i += 1
                continue
            }
            if scan.firstLF < 0 { scan.firstLF = i }
            if i == from || p[i - 1] != Byte.cr {
                scan.bareLF = i
                return scan
            }
            if i - 2 >= from && p[i - 2] == Byte.lf {
                scan.end = i + 1
                return scan
            }
            i += 1
        }
        return scan
    }

    /// Scans field lines from `from` through the empty line ending the head (RFC 9112 §5).
    /// Returns the index past that empty line, or nil if `limit` came first.
    /// Throws 400 for obs-fold, bare CR/LF, a bad or empty name, whitespace before the colon, or
    /// NUL/CTL/DEL in a value; 431 past `maxCount` fields. Values are OWS-trimmed; obs-text passes.
    static func scanFields(
        _ p: UnsafePointer<UInt8>, from: Int, limit: Int, maxCount: Int, into fields: inout [HTTPField]
    ) throws(HTTPError) -> Int? {
        var i = from
        while i < limit {
            let first = p[i]
            if first == Byte.cr {
                guard i + 1 < limit else { return nil }
                guard p[i + 1] == Byte.lf else { throw .badRequest("bare CR") }
                return i + 2
            }
            if first == Byte.lf { throw .badRequest("bare LF") }
            if first.isOWS { throw .badRequest("obs-fold") }
            let nameStart = i
            while i < limit && p[i].isTokenChar { i += 1 }
            guard i < limit else { return nil }
            guard p[i] == Byte.colon else {
                if p[i].isOWS { throw .badRequest("whitespace in field name") }
                throw .badRequest(p[i] == Byte.cr || p[i] == Byte.lf ? "field line without colon"
                                  : "invalid character in field name")
            }
            guard i > nameStart else { throw .badRequest("empty field name") }
            let nameEnd = i
            i += 1
            while i < limit && p[i].isOWS { i += 1 }
            let valueStart = i
            while i < limit {
                let v = p[i]
                if v >= Byte.space {
                    if v == Byte.del { throw .badRequest("DEL in field value") }
                } else if v != Byte.tab {
                    break
                }
                i += 1
            }
            guard i + 1 < limit else { return nil }
            guard p[i] == Byte.cr else {
                throw .badRequest(p[i] == Byte.lf ? "bare LF" : p[i] == 0 ? "NUL in field value"
                                  : "control character in field value")
            }
            guard p[i + 1] == Byte.lf else { throw .badRequest("bare CR") }
            var valueEnd = i
            while valueEnd > valueStart && p[valueEnd - 1].isOWS { valueEnd -= 1 }
            guard fields.count < maxCount else { throw .headersTooLarge }
            fields.append(HTTPField(
                nameStart: Int32(truncatingIfNeeded: nameStart), nameEnd: Int32(truncatingIfNeeded: nameEnd),
                valueStart: Int32(truncatingIfNeeded: valueStart), valueEnd: Int32(truncatingIfNeeded: valueEnd),
                kind: classify(p, nameStart, nameEnd)))
            i += 2
        }
        return nil
    }

    /// Case-insensitive comparison of `p[start..<end]` with a lowercase ASCII literal.
    @inline(__always)
    static func equals(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard end - start == n else { return false }
        let l = literal.utf8Start
        for k in 0..<n where p[start + k].asciiLowercased != l[k] { return false }
        return true
    }

    /// Case-insensitive comparison of `p[a..<aEnd]` with `p[b..<bEnd]`.
    static func equalRanges(_ p: UnsafePointer<UInt8>, _ a: Int, _ aEnd: Int, _ b: Int, _ bEnd: Int) -> Bool {
        guard aEnd - a == bEnd - b else { return false }
        for k in 0..<(aEnd - a) where p[a + k].asciiLowercased != p[b + k].asciiLowercased { return false }
        return true
    }

    /// Like `equals`, with `_` in the input read as `-`; `underscored` tells whether one was.
    static func equalsFoldingUnderscore(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ literal: StaticString, underscored: inout Bool
    ) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard end - start == n else { return false }
        let l = literal.utf8Start
        underscored = false
        for k in 0..<n {
            var c = p[start + k].asciiLowercased
            if c == 0x5F {
                c = 0x2D
                underscored = true
            }
            if c != l[k] { return false }
        }
        return true
    }

    /// The kind of the field name `p[start..<end]` (a non-empty token).
    static func classify(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> HTTPFieldKind {
        let first = p[start].asciiLowercased
        switch end - start {
        case 2: return equals(p, start, end, "te") ? .te : .other
        case 4: return equals(p, start, end, "host") ? .host : .other
        case 6: return equals(p, start, end, "expect") ? .expect : .other
        case 7:
            if first == 0x74 { return equals(p, start, end, "trailer") ? .trailer : .other }
            return equals(p, start, end, "upgrade") ? .upgrade : .other
        case 10:
            if first == 0x63 { return equals(p, start, end, "connection") ? .connection : .other }
            return equals(p, start, end, "keep-alive") ? .keepAlive : .other
        case 14: return equals(p, start, end, "content-length") ? .contentLength : .other
        case 15:
            guard first == 0x78 else { return .other }
            var underscored = false
            guard equalsFoldingUnderscore(p, start, end, "x-forwarded-for", underscored: &underscored) else {
                return .other
            }
            return underscored ? .forwardedUnderscored : .xForwardedFor
        case 16: return equals(p, start, end, "proxy-connection") ? .proxyConnection : .other
        case 17:
            if first == 0x74 { return equals(p, start, end, "transfer-encoding") ? .transferEncoding : .other }
            guard first == 0x78 else { return .other }
            var underscored = false
            guard equalsFoldingUnderscore(p, start, end, "x-forwarded-proto", underscored: &underscored) else {
                return .other
            }
            return underscored ? .forwardedUnderscored : .xForwardedProto
        case 18: return equals(p, start, end, "proxy-authenticate") ? .proxyAuthenticate : .other
        case 19: return equals(p, start, end, "proxy-authorization") ? .proxyAuthorization : .other
        default: return .other
        }
    }

    /// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), at most 2^62; nil for a sign, hex, a list,
    /// whitespace, an empty value or overflow (bad-inputs H3–H5).
    static func contentLength(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> UInt64? {
        guard start < end else { return nil }
        var value: UInt64 = 0
        for k in start..<end {
            let digit = p[k] &- 0x30
            guard digit < 10 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
            guard !o1, !o2, sum <= maxContentLength else { return nil }
            value = sum
        }
        return value
    }

    /// Calls `body` with each element of the comma list `p[start..<end]`, OWS trimmed
    /// (RFC 9110 §5.6.1); empty elements arrive as `start == end`.
    @inline(__always)
    static func forEachListElement(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ body: (Int, Int) -> Void
    ) {
        var i = start
        while true {
            var s = i
            while i < end && p[i] != Byte.comma { i += 1 }
            var e = i
            while s < e && p[s].isOWS { s += 1 }
            while e > s && p[e - 1].isOWS { e -= 1 }
            body(s, e)
            if i >= end { return }
            i += 1
        }
    }

    /// Adds the codings of one `Transfer-Encoding` field to `codings`.
    static func addTransferCodings(_ p: UnsafePointer<UInt8>, _ f: HTTPField, to codings: inout TransferCodings) {
        forEachListElement(p, Int(f.valueStart), Int(f.valueEnd)) { s, e in
            if s == e {
                codings.hasEmptyElement = true
            } else if equals(p, s, e, "chunked") {
                codings.chunkedCount += 1
                codings.chunkedIsLast = true
            } else {
                codings.otherCount += 1
                codings.chunkedIsLast = false
            }
        }
    }

    /// Reads `close` and `keep-alive` among the options of one `Connection` field (RFC 9112 §9.3).
    static func addConnectionOptions(
        _ p: UnsafePointer<UInt8>, _ f: HTTPField, close: inout Bool, keepAlive: inout Bool
    ) {
        forEachListElement(p, Int(f.valueStart), Int(f.valueEnd)) { s, e in
            if equals(p, s, e, "close") {
                close = true
            } else if equals(p, s, e, "keep-alive") {
                keepAlive = true
            }
        }
    }
}

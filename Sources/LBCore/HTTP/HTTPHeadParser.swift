// Scanning shared by the request and response parsers: the end-of-head search, field lines, comma
// lists and lengths. Everything works on a raw pointer into the caller's buffer and on offsets; a
// complete head costs one heap allocation (`HTTPHeadStorage`), nothing else.
// Grammar: RFC 9112 §2.2 (CRLF only here), §5 (field lines), RFC 9110 §5.5–5.6.

/// The bytes the scanner compares against.
enum HTTPByte {
    static let tab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let comma: UInt8 = 0x2C
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let del: UInt8 = 0x7F
}

/// `1` for the bytes that are tchar, one row per high nibble (0x00–0xFF).
let httpTokenMap: StaticString = """
    0000000000000000\
    0000000000000000\
    0101111100110110\
    1111111111000000\
    0111111111111111\
    1111111111100011\
    1111111111111111\
    1111111111101010\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000\
    0000000000000000
    """

extension UInt8 {
    /// RFC 9110 §5.6.2 tchar: `!#$%&'*+-.^_`|~`, DIGIT, ALPHA. One load from a static byte map.
    @inline(__always) var isTokenChar: Bool { httpTokenMap.utf8Start[Int(self)] == 0x31 }

    /// reg-name, IP-literal and port characters (RFC 3986 §3.2.2): unreserved, sub-delims, `:[]%`.
    @inline(__always) var isHostChar: Bool {
        if self < 64 { return (0x2FFF_7FF2_0000_0000 as UInt64) >> UInt64(self) & 1 != 0 }
        if self < 128 { return (0x47FF_FFFE_AFFF_FFFE as UInt64) >> UInt64(self &- 64) & 1 != 0 }
        return false
    }

    /// SP or HTAB (RFC 9110 §5.6.3 OWS).
    @inline(__always) var isOWS: Bool { self == HTTPByte.space || self == HTTPByte.tab }

    /// ASCII lowercase; other bytes unchanged.
    @inline(__always) var asciiLowercased: UInt8 { self &- 0x41 < 26 ? self | 0x20 : self }
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
            } else if p[i] != HTTPByte.lf {
                i += 1
                continue
            }
            if scan.firstLF < 0 { scan.firstLF = i }
            if i == from || p[i - 1] != HTTPByte.cr {
                scan.bareLF = i
                return scan
            }
            if i - 2 >= from && p[i - 2] == HTTPByte.lf {
                scan.end = i + 1
                return scan
            }
            i += 1
        }
        return scan
    }

    /// Whether `p[n-4..<n]` is CR LF CR LF.
    @inline(__always)
    static func endsWithEmptyLine(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        UInt32(littleEndian: UnsafeRawPointer(p + n - 4).loadUnaligned(as: UInt32.self)) == 0x0A0D_0A0D
    }

    /// Index of the first LF in `p[from..<to]`, or -1; eight bytes a step.
    static func firstLF(_ p: UnsafePointer<UInt8>, from: Int, to: Int) -> Int {
        var i = from
        while to - i >= 8 {
            let x = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)) ^ 0x0A0A_0A0A_0A0A_0A0A
            let zeros = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
            if zeros != 0 { return i + zeros.trailingZeroBitCount >> 3 }
            i += 8
        }
        while i < to {
            if p[i] == HTTPByte.lf { return i }
            i += 1
        }
        return -1
    }

    /// Scans field lines from `from` through the empty line ending the head (RFC 9112 §5).
    /// Returns the index past that empty line, or nil if `limit` came first.
    /// Throws 400 for obs-fold, bare CR/LF, a bad or empty name, whitespace before the colon, or
    /// NUL/CTL/DEL in a value; 431 past `maxCount` fields. Values are OWS-trimmed; obs-text passes.
    static func scanFields(
        _ p: UnsafePointer<UInt8>, from: Int, limit: Int, maxCount: Int, into fields: inout HTTPFieldCollector
    ) throws(HTTPError) -> Int? {
        // The byte before `limit` is always an LF (the head's last or its first bare one). Every
        // inner loop stops at an LF, so only the line loop needs a bounds check.
        precondition(from < limit && p[limit - 1] == HTTPByte.lf, "field scan needs an LF-terminated range")
        var i = from
        while i < limit {
            let first = p[i]
            if first == HTTPByte.cr {
                guard p[i + 1] == HTTPByte.lf else { throw .badRequest("bare CR") }
                return i + 2
            }
            if first == HTTPByte.lf { throw .badRequest("bare LF") }
            if first.isOWS { throw .badRequest("obs-fold") }
            let nameStart = i
            while p[i].isTokenChar { i += 1 }
            guard p[i] == HTTPByte.colon else {
                if p[i].isOWS { throw .badRequest("whitespace in field name") }
                if p[i] == HTTPByte.cr || p[i] == HTTPByte.lf { throw .badRequest("field line without colon") }
                throw .badRequest("invalid character in field name")
            }
            guard i > nameStart else { throw .badRequest("empty field name") }
            let nameEnd = i
            i += 1
            while p[i].isOWS { i += 1 }
            let valueStart = i
            // Eight bytes a step while none is a CTL or DEL (obs-text passes), then byte by byte.
            while limit - i >= 8 {
                let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                let control = (w &- 0x2020_2020_2020_2020) & ~w & 0x8080_8080_8080_8080
                let x = w ^ 0x7F7F_7F7F_7F7F_7F7F
                let del = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
                if control | del != 0 { break }
                i += 8
            }
            while true {
                let v = p[i]
                if v >= HTTPByte.space {
                    if v == HTTPByte.del { throw .badRequest("DEL in field value") }
                } else if v != HTTPByte.tab {
                    break
                }
                i += 1
            }
            switch p[i] {
            case HTTPByte.cr: break
            case HTTPByte.lf: throw .badRequest("bare LF")
            case 0: throw .badRequest("NUL in field value")
            default: throw .badRequest("control character in field value")
            }
            guard p[i + 1] == HTTPByte.lf else { throw .badRequest("bare CR") }
            var valueEnd = i
            while valueEnd > valueStart && p[valueEnd - 1].isOWS { valueEnd -= 1 }
            guard fields.count < maxCount else { throw .headersTooLarge }
            fields.append(
                HTTPField(
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

    /// `equals` for field names, eight bytes a step. Exact only because names are tokens and the
    /// literal holds only lowercase letters and `-`: for a tchar c, `c | 0x20` is a lowercase letter
    /// only if c is that letter in either case, and is `-` only if c is `-`.
    @inline(__always)
    static func equalsName(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard end - start == n else { return false }
        let name = UnsafeRawPointer(p + start)
        let l = UnsafeRawPointer(literal.utf8Start)
        guard n >= 8 else {
            for k in 0..<n where p[start + k] | 0x20 != l.load(fromByteOffset: k, as: UInt8.self) { return false }
            return true
        }
        var k = 0
        while true {
            let a = name.loadUnaligned(fromByteOffset: k, as: UInt64.self) | 0x2020_2020_2020_2020
            if a != l.loadUnaligned(fromByteOffset: k, as: UInt64.self) { return false }
            if k == n - 8 { return true }
            k = Swift.min(k + 8, n - 8)
        }
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
        case 2: return equalsName(p, start, end, "te") ? .te : .other
        case 4: return equalsName(p, start, end, "host") ? .host : .other
        case 6: return equalsName(p, start, end, "expect") ? .expect : .other
        case 7:
            if first == 0x74 { return equalsName(p, start, end, "trailer") ? .trailer : .other }
            return equalsName(p, start, end, "upgrade") ? .upgrade : .other
        case 10:
            if first == 0x63 { return equalsName(p, start, end, "connection") ? .connection : .other }
            return equalsName(p, start, end, "keep-alive") ? .keepAlive : .other
        case 14: return equalsName(p, start, end, "content-length") ? .contentLength : .other
        case 15:
            guard first == 0x78 else { return .other }
            var underscored = false
            guard equalsFoldingUnderscore(p, start, end, "x-forwarded-for", underscored: &underscored) else {
                return .other
            }
            return underscored ? .forwardedUnderscored : .xForwardedFor
        case 16: return equalsName(p, start, end, "proxy-connection") ? .proxyConnection : .other
        case 17:
            if first == 0x74 { return equalsName(p, start, end, "transfer-encoding") ? .transferEncoding : .other }
            guard first == 0x78 else { return .other }
            var underscored = false
            guard equalsFoldingUnderscore(p, start, end, "x-forwarded-proto", underscored: &underscored) else {
                return .other
            }
            return underscored ? .forwardedUnderscored : .xForwardedProto
        case 18: return equalsName(p, start, end, "proxy-authenticate") ? .proxyAuthenticate : .other
        case 19: return equalsName(p, start, end, "proxy-authorization") ? .proxyAuthorization : .other
        default: return .other
        }
    }

    /// `p[start..<end]` as a String (invalid UTF-8, possible only in obs-text, becomes U+FFFD). The
    /// cheapest initializer measured for the short ASCII strings heads are made of.
    static func string(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> String {
        String(unsafeUninitializedCapacity: end - start) { buffer in
            guard let base = buffer.baseAddress else { return 0 }
            base.initialize(from: p + start, count: end - start)
            return end - start
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
            while i < end && p[i] != HTTPByte.comma { i += 1 }
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

// The DNS message codec (RFC 1035, 2782, 3596, 6891): pure functions over bytes.
// Every read is bounds-checked; compression pointers must point strictly backwards and are
// followed at most 64 times; nothing is allocated from a declared count.

#if canImport(Glibc)
import Glibc
#endif

/// A domain name: lowercased labels. `description` is the FQDN with a trailing dot.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public let labels: [String]

    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasSuffix(".") { t = t.dropLast() }
        if t.isEmpty {
            labels = []
            return
        }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        var wire = 1
        for p in parts {
            guard (1...63).contains(p.utf8.count) else { return nil }
            wire += p.utf8.count + 1
        }
        guard wire <= 255 else { return nil }
        labels = parts.map { $0.lowercased() }
    }

    init(validatedLabels: [String]) { labels = validatedLabels }

    public var description: String { labels.isEmpty ? "." : labels.joined(separator: ".") + "." }
}

/// An IPv4 or IPv6 address from an A or AAAA record.
public struct DNSAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public var isIPv6: Bool { bytes.count == 16 }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    public var description: String {
        var buf = [CChar](repeating: 0, count: 64)
        let family = isIPv6 ? AF_INET6 : AF_INET
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buf, socklen_t(buf.count)) != nil }
        guard ok else { return "?" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

public struct DNSQuestion: Hashable, Sendable {
    public var name: DNSName
    public var type: UInt16
    public var qclass: UInt16
    public init(name: DNSName, type: UInt16, qclass: UInt16 = 1) {
        self.name = name
        self.type = type
        self.qclass = qclass
    }
}

public enum DNSRecordData: Hashable, Sendable {
    case a(DNSAddress)
    case aaaa(DNSAddress)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    case opt
    /// Any other type (TXT, SOA, ...): skipped.
    case other(type: UInt16)
}

public struct DNSResourceRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: UInt16
    public var rclass: UInt16
    /// TTLs of 2^31 or more read as 0 (RFC 2181 §8).
    public var ttl: UInt32
    public var data: DNSRecordData
}

public struct DNSMessage: Hashable, Sendable {
    public var id: UInt16
    public var isResponse: Bool
    public var opcode: UInt8
    public var truncated: Bool
    public var recursionDesired: Bool
    /// RCODE, with the extended bits of an OPT record when present.
    public var rcode: UInt16
    public var questions: [DNSQuestion]
    public var answers: [DNSResourceRecord]
    public var authorities: [DNSResourceRecord]
    public var additionals: [DNSResourceRecord]
    /// The OPT record's UDP payload size, when it has one.
    public var ednsPayload: UInt16?

    public static let noError: UInt16 = 0
    public static let formErr: UInt16 = 1
    public static let servFail: UInt16 = 2
    public static let nxDomain: UInt16 = 3
    public static let refused: UInt16 = 5

    /// A standard query for one question, RD set, with an OPT record advertising `ednsPayload`.
    public static func query(id: UInt16, question: DNSQuestion, ednsPayload: UInt16?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
        u16(id)
        u16(0x0100)  // RD
        u16(1); u16(0); u16(0); u16(ednsPayload == nil ? 0 : 1)
        for label in question.name.labels {
            out.append(UInt8(label.utf8.count))
            out.append(contentsOf: label.utf8)
        }
        out.append(0)
        u16(question.type); u16(question.qclass)
        if let payload = ednsPayload {
            out.append(0)  // root
            u16(41); u16(payload)
            u16(0); u16(0)  // extended rcode, version, flags
            u16(0)  // rdlength
        }
        return out
    }
}

public enum DNSDecodeError: Error, Equatable, Sendable {
    case truncatedHeader
    case truncated(String)
    case badPointer
    case nameTooLong
    case badLabel
    case badRDLength(type: UInt16)
}

extension DNSMessage {
    /// Decodes a whole message; throws on any malformation.
    public static func decode(_ bytes: [UInt8]) throws(DNSDecodeError) -> DNSMessage {
        var r = Reader(bytes: bytes)
        guard bytes.count >= 12 else { throw .truncatedHeader }
        let id = try r.u16()
        let flags = try r.u16()
        let qd = Int(try r.u16()), an = Int(try r.u16()), ns = Int(try r.u16()), ar = Int(try r.u16())
        var questions: [DNSQuestion] = []
        for _ in 0..<qd {
            let name = try r.name()
            questions.append(DNSQuestion(name: name, type: try r.u16(), qclass: try r.u16()))
        }
        var sections: [[DNSResourceRecord]] = [[], [], []]
        var payload: UInt16?
        var extended: UInt16 = 0
        for (i, count) in [an, ns, ar].enumerated() {
            // Each record takes at least 11 bytes: a count beyond what is left fails at the read.
            for _ in 0..<count {
                let rr = try r.record()
                if rr.type == 41 {
                    payload = rr.rclass
                    extended = UInt16(rr.ttl >> 24) << 4
                }
                sections[i].append(rr)
            }
        }
        return DNSMessage(
            id: id, isResponse: flags & 0x8000 != 0, opcode: UInt8((flags >> 11) & 0xF),
            truncated: flags & 0x0200 != 0, recursionDesired: flags & 0x0100 != 0,
            rcode: (flags & 0xF) | extended, questions: questions, answers: sections[0],
            authorities: sections[1], additionals: sections[2], ednsPayload: payload)
    }
}

private struct Reader {
    let bytes: [UInt8]
    var at = 0

    mutating func u8() throws(DNSDecodeError) -> UInt8 {
        guard at < bytes.count else { throw .truncated("byte at \(at)") }
        defer { at += 1 }
        return bytes[at]
    }

    mutating func u16() throws(DNSDecodeError) -> UInt16 {
        guard at + 2 <= bytes.count else { throw .truncated("u16 at \(at)") }
        defer { at += 2 }
        return UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
    }

    mutating func u32() throws(DNSDecodeError) -> UInt32 {
        let hi = UInt32(try u16()), lo = UInt32(try u16())
        return hi << 16 | lo
    }

    /// A name at the cursor, following compression pointers (strictly backwards, at most 64).
    mutating func name() throws(DNSDecodeError) -> DNSName {
        var labels: [String] = []
        var wire = 1
        var pos = at
        var jumped = false
        var hops = 0
        while true {
            guard pos < bytes.count else { throw .truncated("name at \(pos)") }
            let len = Int(bytes[pos])
            switch len & 0xC0 {
            case 0xC0:
                guard pos + 1 < bytes.count else { throw .truncated("pointer at \(pos)") }
                let target = (len & 0x3F) << 8 | Int(bytes[pos + 1])
                guard target < pos, hops < 64 else { throw .badPointer }
                hops += 1
                if !jumped { at = pos + 2 }
                jumped = true
                pos = target
            case 0:
                if len == 0 {
                    if !jumped { at = pos + 1 }
                    return DNSName(validatedLabels: labels)
                }
                guard pos + 1 + len <= bytes.count else { throw .truncated("label at \(pos)") }
                wire += len + 1
                guard wire <= 255 else { throw .nameTooLong }
                labels.append(String(decoding: bytes[(pos + 1)..<(pos + 1 + len)], as: UTF8.self).lowercased())
                pos += 1 + len
            default:
                throw .badLabel
            }
        }
    }

    mutating func record() throws(DNSDecodeError) -> DNSResourceRecord {
        let name = try name()
        let type = try u16()
        let rclass = try u16()
        var ttl = try u32()
        if ttl >= 1 << 31 && type != 41 { ttl = 0 }
        let length = Int(try u16())
        let end = at + length
        guard end <= bytes.count else { throw .badRDLength(type: type) }
        let data: DNSRecordData
        switch type {
        case 1, 28:
            guard length == (type == 1 ? 4 : 16), let addr = DNSAddress(bytes: Array(bytes[at..<end])) else {
                throw .badRDLength(type: type)
            }
            data = type == 1 ? .a(addr) : .aaaa(addr)
        case 33:
            guard length >= 7 else { throw .badRDLength(type: type) }
            let priority = try u16(), weight = try u16(), port = try u16()
            let target = try self.name()
            guard at == end else { throw .badRDLength(type: type) }
            data = .srv(priority: priority, weight: weight, port: port, target: target)
        case 41:
            data = .opt
        default:
            data = .other(type: type)
        }
        at = end
        return DNSResourceRecord(name: name, type: type, rclass: rclass, ttl: ttl, data: data)
    }
}

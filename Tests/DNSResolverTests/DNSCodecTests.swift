// The DNS codec and SRV extraction against hand-built bytes (golden vectors), and cases D6–D11,
// D16–D18, D20 of shared/notes/bad-inputs.md.

import Testing

@testable import DNSResolver

/// Builds messages byte by byte, so the tests say exactly what is on the wire.
struct Wire {
    var bytes: [UInt8] = []
    mutating func u16(_ v: Int) { bytes += [UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    mutating func u32(_ v: UInt32) { u16(Int(v >> 16)); u16(Int(v & 0xFFFF)) }
    mutating func name(_ text: String) {
        for label in text.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += Array(label.utf8)
        }
        bytes.append(0)
    }
    mutating func pointer(_ offset: Int) { u16(0xC000 | offset) }
    mutating func header(id: Int = 0x1234, flags: Int = 0x8500, qd: Int = 1, an: Int = 0, ns: Int = 0, ar: Int = 0) {
        u16(id); u16(flags); u16(qd); u16(an); u16(ns); u16(ar)
    }
}

let srvName = "_web._tcp.service.consul"

/// A Consul-shaped answer: two SRV records with compressed owner names, A records in the
/// additional section, one TXT record, and one out-of-bailiwick A record.
func consulAnswer(id: Int = 0x1234, ttl: UInt32 = 0) -> [UInt8] {
    var w = Wire()
    w.header(id: id, flags: 0x8500, an: 2, ar: 4)
    let q = w.bytes.count  // 12
    w.name(srvName); w.u16(33); w.u16(1)
    // SRV 1 1 21621 0a030041.addr.dc1.consul.
    w.pointer(q); w.u16(33); w.u16(1); w.u32(ttl)
    var rd = Wire()
    rd.u16(1); rd.u16(1); rd.u16(21621); rd.name("0a030041.addr.dc1.consul")
    w.u16(rd.bytes.count); let target1 = w.bytes.count + 6; w.bytes += rd.bytes
    // SRV 1 10 8080 node-c.node.dc1.consul.
    w.pointer(q); w.u16(33); w.u16(1); w.u32(ttl)
    rd = Wire()
    rd.u16(1); rd.u16(10); rd.u16(8080); rd.name("node-c.node.dc1.consul")
    w.u16(rd.bytes.count); let target2 = w.bytes.count + 6; w.bytes += rd.bytes
    // Additional: A for target 1 (compressed to it), TXT, A for target 2, and a stray A.
    w.pointer(target1); w.u16(1); w.u16(1); w.u32(ttl); w.u16(4); w.bytes += [10, 3, 0, 65]
    w.pointer(target2); w.u16(16); w.u16(1); w.u32(ttl); w.u16(24); w.bytes.append(23)
    w.bytes += Array("consul-network-segment=".utf8)
    w.pointer(target2); w.u16(1); w.u16(1); w.u32(ttl); w.u16(4); w.bytes += [10, 3, 0, 70]
    w.name("evil.example"); w.u16(1); w.u16(1); w.u32(ttl); w.u16(4); w.bytes += [6, 6, 6, 6]
    return w.bytes
}

@Suite struct DNSCodecTests {
    let question = DNSQuestion(name: DNSName(srvName)!, type: 33)

    @Test func queryBytesAreExactlyTheWireFormat() {
        let q = DNSMessage.query(id: 0xBEEF, question: question, ednsPayload: 4096)
        var w = Wire()
        w.header(id: 0xBEEF, flags: 0x0100, qd: 1, ar: 1)
        w.name(srvName); w.u16(33); w.u16(1)
        w.bytes.append(0); w.u16(41); w.u16(4096); w.u32(0); w.u16(0)
        #expect(q == w.bytes)
        let decoded = try? DNSMessage.decode(q)
        #expect(decoded?.questions == [question] && decoded?.ednsPayload == 4096 && decoded?.isResponse == false)
    }

    @Test func consulShapedAnswerDecodesWithCompression() throws {
        let m = try DNSMessage.decode(consulAnswer())
        #expect(m.id == 0x1234 && m.isResponse && !m.truncated && m.rcode == 0)
        #expect(m.answers.count == 2 && m.additionals.count == 4)
        #expect(m.answers[1].data == .srv(priority: 1, weight: 10, port: 8080, target: DNSName("node-c.node.dc1.consul")!))
        #expect(m.additionals[1].data == .other(type: 16))
    }

    @Test func srvExtractionUsesOnlyTargetAddressesAndReportsTTL() throws {
        let m = try DNSMessage.decode(consulAnswer(ttl: 30))
        let x = SRVAnswer.extract(from: m, question: question)
        #expect(x.targets.map(\.port) == [21621, 8080])
        #expect(x.targets.map(\.weight) == [1, 10])
        #expect(x.targets.map { $0.addresses.map(\.description) } == [["10.3.0.65"], ["10.3.0.70"]])
        #expect(x.unresolved.isEmpty)
        #expect(x.ttl == 30)
    }

    @Test func srvTargetDotPortZeroAndDuplicatesAreDroppedAndMissingAddressesReported() throws {
        var w = Wire()
        w.header(an: 5)
        w.name(srvName); w.u16(33); w.u16(1)
        func srv(_ port: Int, _ target: String?) {
            w.pointer(12); w.u16(33); w.u16(1); w.u32(5)
            var rd = Wire()
            rd.u16(1); rd.u16(1); rd.u16(port)
            if let target { rd.name(target) } else { rd.bytes.append(0) }
            w.u16(rd.bytes.count); w.bytes += rd.bytes
        }
        srv(80, nil)                // D16: "." = service not available
        srv(0, "a.node.consul")     // D17: port 0
        srv(81, "a.node.consul")
        srv(81, "A.node.consul")    // D17: duplicate (names are case-insensitive)
        srv(82, "a.node.consul")    // D7 (Consul): several ports on one target are several backends
        let x = SRVAnswer.extract(from: try DNSMessage.decode(w.bytes), question: question)
        #expect(x.targets.map(\.port) == [81, 82])
        #expect(x.unresolved == [DNSName("a.node.consul")!])
    }

    @Test func ipv6AddrTargetsGetTheirAAAA() throws {
        var w = Wire()
        w.header(an: 1, ar: 1)
        w.name(srvName); w.u16(33); w.u16(1)
        w.pointer(12); w.u16(33); w.u16(1); w.u32(0)
        var rd = Wire()
        rd.u16(1); rd.u16(1); rd.u16(9000); rd.name("20010db800010002cafe000000001337.addr.dc1.consul")
        w.u16(rd.bytes.count); let target = w.bytes.count + 6; w.bytes += rd.bytes
        w.pointer(target); w.u16(28); w.u16(1); w.u32(0); w.u16(16)
        w.bytes += [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0xca, 0xfe, 0, 0, 0, 0, 0x13, 0x37]
        let x = SRVAnswer.extract(from: try DNSMessage.decode(w.bytes), question: question)
        #expect(x.targets.first?.addresses.map(\.description) == ["2001:db8:1:2:cafe::1337"])
        #expect(x.targets.first?.addresses.first?.isIPv6 == true)
    }

    // MARK: malformed input (D6–D11, D18)

    @Test func shortMessagesFail() {
        for n in 0..<12 {
            #expect(throws: DNSDecodeError.truncatedHeader) { try DNSMessage.decode(Array(consulAnswer().prefix(n))) }
        }
        // Every prefix of a valid message fails cleanly (no trap, no partial result).
        let full = consulAnswer()
        for n in 12..<full.count { #expect(throws: (any Error).self) { try DNSMessage.decode(Array(full.prefix(n))) } }
    }

    @Test func compressionPointerLoopsAndForwardPointersFail() {
        var loop = Wire()
        loop.header(qd: 1)
        loop.pointer(12)  // points at itself
        loop.u16(33); loop.u16(1)
        #expect(throws: DNSDecodeError.badPointer) { try DNSMessage.decode(loop.bytes) }
        var forward = Wire()
        forward.header(qd: 1)
        forward.pointer(20)
        forward.u16(33); forward.u16(1); forward.name("a.b")
        #expect(throws: DNSDecodeError.badPointer) { try DNSMessage.decode(forward.bytes) }
        var past = Wire()
        past.header(qd: 1)
        past.bytes += [0xC0]
        #expect(throws: (any Error).self) { try DNSMessage.decode(past.bytes) }
    }

    @Test func rdlengthPastTheEndAndWrongAddressLengthsFail() {
        var w = Wire()
        w.header(an: 1)
        w.name(srvName); w.u16(33); w.u16(1)
        w.pointer(12); w.u16(1); w.u16(1); w.u32(0); w.u16(200); w.bytes += [1, 2, 3, 4]
        #expect(throws: DNSDecodeError.badRDLength(type: 1)) { try DNSMessage.decode(w.bytes) }
        for (type, length) in [(1, 5), (28, 4), (33, 6)] {
            var v = Wire()
            v.header(an: 1)
            v.name(srvName); v.u16(33); v.u16(1)
            v.pointer(12); v.u16(type); v.u16(1); v.u32(0); v.u16(length); v.bytes += Array(repeating: 0, count: length)
            #expect(throws: DNSDecodeError.badRDLength(type: UInt16(type))) { try DNSMessage.decode(v.bytes) }
        }
    }

    @Test func longNamesAndLabelsFail() {
        #expect(DNSName(String(repeating: "a", count: 64) + ".consul") == nil)
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 60), count: 5).joined(separator: ".")) == nil)
        #expect(DNSName(String(repeating: "a", count: 63) + ".consul") != nil)
        var w = Wire()
        w.header(qd: 1)
        for _ in 0..<5 { w.bytes.append(60); w.bytes += Array(repeating: 0x61, count: 60) }
        w.bytes.append(0); w.u16(33); w.u16(1)
        #expect(throws: DNSDecodeError.nameTooLong) { try DNSMessage.decode(w.bytes) }
        var bad = Wire()
        bad.header(qd: 1)
        bad.bytes += [0x41, 0x61, 0]  // label type 01: reserved
        #expect(throws: DNSDecodeError.badLabel) { try DNSMessage.decode(bad.bytes) }
    }

    @Test func hugeDeclaredCountsFailCheaply() {
        var bytes = consulAnswer()
        bytes[6] = 0xFF; bytes[7] = 0xFF  // ancount 65535
        #expect(throws: (any Error).self) { try DNSMessage.decode(bytes) }
    }

    @Test func ttlOfTwoToTheThirtyFirstOrMoreReadsAsZero() throws {
        let m = try DNSMessage.decode(consulAnswer(ttl: 0x8000_0001))
        #expect(m.answers.allSatisfy { $0.ttl == 0 })
        #expect(try DNSMessage.decode(consulAnswer(ttl: 0x7FFF_FFFF)).answers[0].ttl == 0x7FFF_FFFF)
    }
}

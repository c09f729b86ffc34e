// The query machine with an explicit clock and a seeded generator (D1, D3–D5, D12, D15, D19).

import Testing

@testable import DNSResolver

/// A deterministic generator for query IDs.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct DNSQueryTests {
    let question = DNSQuestion(name: DNSName(srvName)!, type: 33)
    let t0: UInt64 = 1_000_000_000

    func start(servers: Int = 2) -> (DNSQuery, [DNSQuery.Action], SeededGenerator) {
        var rng = SeededGenerator(state: 7)
        var q = DNSQuery(question: question, settings: .init(nameservers: servers, timeout: .milliseconds(500)))
        let actions = q.start(now: t0, random: &rng)
        return (q, actions, rng)
    }

    /// The ID of the query sent by the first send action.
    func sentID(_ actions: [DNSQuery.Action]) -> Int? {
        for a in actions {
            switch a {
            case .sendUDP(_, let b): return Int(b[0]) << 8 | Int(b[1])
            case .sendTCP(_, let b): return Int(b[2]) << 8 | Int(b[3])
            default: continue
            }
        }
        return nil
    }

    func reply(id: Int, flags: Int = 0x8500) -> [UInt8] {
        var b = consulAnswer(id: id)
        b[2] = UInt8(flags >> 8); b[3] = UInt8(flags & 0xFF)
        return b
    }

    @Test func sendsEDNS4096OverUDPWithADeadline() throws {
        let (_, actions, _) = start()
        guard case .sendUDP(0, let bytes) = actions.first else {
            Issue.record("\(actions)")
            return
        }
        #expect(try DNSMessage.decode(bytes).ednsPayload == 4096)
        #expect(actions.last == .setDeadline(t0 + 500_000_000))
    }

    @Test func idsDifferPerQueryAndAttempt() {
        var ids: Set<Int> = []
        var rng = SeededGenerator(state: 1)
        for _ in 0..<200 {
            var q = DNSQuery(question: question, settings: .init(nameservers: 1, timeout: .seconds(1)))
            ids.insert(sentID(q.start(now: t0, random: &rng))!)
            ids.insert(sentID(q.deadlineReached(now: t0 + 1, random: &rng))!)
        }
        #expect(ids.count > 390)
    }

    @Test func mismatchedRepliesAreDroppedAndTheRightOneWins() throws {
        var (q, actions, rng) = start()
        let id = sentID(actions)!
        #expect(q.udpReceived(reply(id: id ^ 1), now: t0 + 1, random: &rng).isEmpty)          // D3 wrong ID
        #expect(q.udpReceived(reply(id: id, flags: 0x0500), now: t0 + 2, random: &rng).isEmpty)  // D5 QR=0
        #expect(q.udpReceived(reply(id: id, flags: 0xC500), now: t0 + 3, random: &rng).isEmpty)  // D5 opcode 8
        var other = reply(id: id)
        other[14] = UInt8(ascii: "x")  // D4: the reply is for "_xeb._tcp...", another question
        #expect(q.udpReceived(other, now: t0 + 4, random: &rng).isEmpty)
        #expect(q.udpReceived([1, 2, 3], now: t0 + 5, random: &rng).isEmpty)                  // D6 short
        #expect(q.droppedReplies == 5)
        let done = q.udpReceived(reply(id: id), now: t0 + 6, random: &rng)
        guard case .finish(.answer(let m)) = done.first else {
            Issue.record("\(done)")
            return
        }
        #expect(m.answers.count == 2)
    }

    @Test func truncatedUDPAnswerIsAskedAgainOverTCP() throws {
        var (q, actions, rng) = start()
        let tc = q.udpReceived(reply(id: sentID(actions)!, flags: 0x8700), now: t0 + 1, random: &rng)
        guard case .sendTCP(0, let framed) = tc.first else {
            Issue.record("\(tc)")
            return
        }
        #expect(Int(framed[0]) << 8 | Int(framed[1]) == framed.count - 2)
        // The answer arrives over TCP in two pieces.
        let body = reply(id: sentID(tc)!)
        let framedReply = [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        #expect(q.tcpReceived(Array(framedReply.prefix(7)), now: t0 + 2, random: &rng).isEmpty)
        let done = q.tcpReceived(Array(framedReply.dropFirst(7)), now: t0 + 3, random: &rng)
        guard case .finish(.answer) = done.first else {
            Issue.record("\(done)")
            return
        }
    }

    @Test func formerrWithOPTRetriesWithout() throws {
        var (q, actions, rng) = start()
        let again = q.udpReceived(reply(id: sentID(actions)!, flags: 0x8501), now: t0 + 1, random: &rng)
        guard case .sendUDP(0, let bytes) = again.first else {
            Issue.record("\(again)")
            return
        }
        #expect(try DNSMessage.decode(bytes).ednsPayload == nil)
    }

    @Test(arguments: [(0x8502, DNSQueryFailure.serverFailure), (0x8505, .refused)])
    func serverErrorsMoveToTheNextNameserverThenFail(flags: Int, failure: DNSQueryFailure) {
        var (q, actions, rng) = start(servers: 2)
        var now = t0
        var sends: [Int] = []
        for _ in 0..<10 {
            now += 1
            actions = q.udpReceived(reply(id: sentID(actions)!, flags: flags), now: now, random: &rng)
            if case .sendUDP(let server, _) = actions.first { sends.append(server) }
            if case .finish(let result) = actions.first {
                #expect(result == .failure(failure))
                #expect(sends == [1, 0, 1])  // 4 attempts over 2 servers
                return
            }
        }
        Issue.record("never finished")
    }

    @Test func timeoutsRotateAndFinishAsTimeout() {
        var (q, _, rng) = start(servers: 2)
        var finished: DNSQueryResult?
        for i in 1...4 {
            let a = q.deadlineReached(now: t0 + UInt64(i) * 500_000_000, random: &rng)
            if case .finish(let r) = a.first { finished = r }
        }
        #expect(finished == .failure(.timeout))
    }

    @Test func nxdomainAndNodataFinishAtOnce() {
        var (q, actions, rng) = start()
        var nx = Wire()
        nx.header(id: sentID(actions)!, flags: 0x8503)
        nx.name(srvName); nx.u16(33); nx.u16(1)
        #expect(q.udpReceived(nx.bytes, now: t0 + 1, random: &rng) == [.finish(.failure(.nameError))])
        var (q2, actions2, rng2) = start()
        var nodata = Wire()
        nodata.header(id: sentID(actions2)!, flags: 0x8500)
        nodata.name(srvName); nodata.u16(33); nodata.u16(1)
        #expect(q2.udpReceived(nodata.bytes, now: t0 + 1, random: &rng2) == [.finish(.failure(.noData))])
    }

    @Test func replyBiggerThanAdvertisedIsDropped() {
        var (q, actions, rng) = start()
        var big = reply(id: sentID(actions)!)
        big += Array(repeating: 0, count: 5000)
        #expect(q.udpReceived(big, now: t0 + 1, random: &rng).isEmpty)
        #expect(q.droppedReplies == 1)
    }
}

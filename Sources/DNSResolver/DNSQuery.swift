// One DNS question, asked until answered: the sans-I/O query machine (STYLE.md section 1).
//
// A fresh random ID and a fresh connected socket per attempt (RFC 5452); EDNS0 advertising 4096
// bytes, so Consul's 3-record cap for small UDP answers never applies; a reply counts only when
// it parses, is a response to a standard query with one question, and matches the ID and the
// question (anything else is dropped and counted, and the machine keeps waiting); TC=1 asks the
// same question over TCP, so a truncated answer is never used; FORMERR to a query with OPT is
// asked again without it; SERVFAIL, REFUSED, a timeout or a broken transport move on to the next
// nameserver while attempts remain. NXDOMAIN and NODATA are answers and finish at once.
// Time comes in as `now` (nanoseconds), randomness from the generator the shell passes.

public enum DNSQueryFailure: Error, Equatable, Sendable {
    case timeout
    case serverFailure
    case refused
    case formatError
    case nameError
    case noData
    case malformed
}

public enum DNSQueryResult: Equatable, Sendable {
    case answer(DNSMessage)
    case failure(DNSQueryFailure)
}

public struct DNSQuery: Sendable {
    public struct Settings: Sendable, Equatable {
        public var nameservers: Int
        public var timeout: Duration
        /// Attempts in all, over the nameservers in turn: 2 per nameserver by default.
        public var attempts: Int
        public var ednsPayload: UInt16
        public init(nameservers: Int, timeout: Duration, attempts: Int? = nil, ednsPayload: UInt16 = 4096) {
            self.nameservers = max(1, nameservers)
            self.timeout = timeout
            self.attempts = max(1, attempts ?? 2 * max(1, nameservers))
            self.ednsPayload = ednsPayload
        }
    }

    public enum Action: Equatable, Sendable {
        /// Close any previous transport, open a fresh connected UDP socket to `server`, send.
        case sendUDP(server: Int, bytes: [UInt8])
        /// Close any previous transport, open a TCP connection to `server`, send (length-prefixed).
        case sendTCP(server: Int, bytes: [UInt8])
        case setDeadline(UInt64)
        case finish(DNSQueryResult)
    }

    public let question: DNSQuestion
    public let settings: Settings
    public private(set) var droppedReplies = 0
    private var attempt = 0
    private var server = 0
    private var id: UInt16 = 0
    private var useEDNS = true
    private var overTCP = false
    private var tcpBuffer: [UInt8] = []
    private var lastFailure = DNSQueryFailure.timeout
    private var done = false

    public init(question: DNSQuestion, settings: Settings) {
        self.question = question
        self.settings = settings
    }

    public mutating func start(now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        send(now: now, tcp: false, random: &random)
    }

    private mutating func send(now: UInt64, tcp: Bool, random: inout some RandomNumberGenerator) -> [Action] {
        attempt += 1
        id = UInt16.random(in: 0...UInt16.max, using: &random)
        overTCP = tcp
        tcpBuffer = []
        let bytes = DNSMessage.query(id: id, question: question, ednsPayload: useEDNS ? settings.ednsPayload : nil)
        let deadline = now &+ UInt64(max(0, settings.timeout.components.seconds)) * 1_000_000_000
            &+ UInt64(max(0, settings.timeout.components.attoseconds / 1_000_000_000))
        if tcp {
            let framed = [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
            return [.sendTCP(server: server, bytes: framed), .setDeadline(deadline)]
        }
        return [.sendUDP(server: server, bytes: bytes), .setDeadline(deadline)]
    }

    /// Moves on after a failed attempt: the next nameserver over UDP, or the final failure.
    private mutating func next(_ failure: DNSQueryFailure, now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        lastFailure = failure
        guard attempt < settings.attempts else {
            done = true
            return [.finish(.failure(failure))]
        }
        server = (server + 1) % settings.nameservers
        return send(now: now, tcp: false, random: &random)
    }

    public mutating func udpReceived(_ bytes: [UInt8], now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        guard !done, !overTCP else { return [] }
        guard bytes.count <= Int(useEDNS ? max(512, settings.ednsPayload) : 512) else {
            droppedReplies += 1
            return []
        }
        return handle(bytes, now: now, random: &random)
    }

    public mutating func tcpReceived(_ bytes: [UInt8], now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        guard !done, overTCP else { return [] }
        tcpBuffer += bytes
        guard tcpBuffer.count >= 2 else { return [] }
        let length = Int(tcpBuffer[0]) << 8 | Int(tcpBuffer[1])
        guard tcpBuffer.count >= 2 + length else { return [] }
        let message = Array(tcpBuffer[2..<(2 + length)])
        tcpBuffer = []
        let actions = handle(message, now: now, random: &random)
        // Over TCP a dropped reply cannot be followed by the right one on the same stream.
        if actions.isEmpty { return next(.malformed, now: now, random: &random) }
        return actions
    }

    public mutating func transportFailed(now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        guard !done else { return [] }
        return next(overTCP ? .malformed : .refused, now: now, random: &random)
    }

    public mutating func deadlineReached(now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        guard !done else { return [] }
        return next(.timeout, now: now, random: &random)
    }

    private mutating func handle(_ bytes: [UInt8], now: UInt64, random: inout some RandomNumberGenerator) -> [Action] {
        guard let m = try? DNSMessage.decode(bytes), m.isResponse, m.opcode == 0, m.id == id,
              m.questions.count == 1, let q = m.questions.first,
              q.name == question.name, q.type == question.type, q.qclass == question.qclass
        else {
            droppedReplies += 1
            return []
        }
        if m.truncated && !overTCP {
            return send(now: now, tcp: true, random: &random)
        }
        switch m.rcode {
        case DNSMessage.noError:
            done = true
            let has = m.answers.contains { $0.name == question.name && $0.type == question.type }
            return [.finish(has ? .answer(m) : .failure(.noData))]
        case DNSMessage.nxDomain:
            done = true
            return [.finish(.failure(.nameError))]
        case DNSMessage.formErr where useEDNS:
            useEDNS = false
            attempt -= 1  // the retry without OPT is the same attempt
            return send(now: now, tcp: overTCP, random: &random)
        case DNSMessage.formErr:
            return next(.formatError, now: now, random: &random)
        case DNSMessage.servFail:
            return next(.serverFailure, now: now, random: &random)
        case DNSMessage.refused:
            return next(.refused, now: now, random: &random)
        default:
            return next(.serverFailure, now: now, random: &random)
        }
    }
}

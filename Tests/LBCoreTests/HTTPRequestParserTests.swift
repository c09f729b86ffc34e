import Testing

@testable import LBCore

// Request-head parser against shared/notes/bad-inputs.md sections A and B (case numbers H1–H48).

/// Helpers shared by the HTTP test files (namespaced: the test module is shared with other suites).
enum HTTPTestSupport {
    /// What a parse came to, in a form tables can state.
    enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case accepted(BodyFraming)
        case status(Int)
        case incomplete

        var description: String {
            switch self {
            case .accepted(let framing): "accepted(\(framing))"
            case .status(let code): "status(\(code))"
            case .incomplete: "incomplete"
            }
        }
    }

    /// `line CRLF field CRLF … CRLF`.
    static func head(_ line: String, _ fields: [String]) -> [UInt8] {
        Array((([line] + fields).map { $0 + "\r\n" }.joined() + "\r\n").utf8)
    }

    static func outcome<Head>(_ result: HTTPParseResult<Head>, framing: (Head) -> BodyFraming) -> Outcome {
        switch result {
        case .incomplete: .incomplete
        case .complete(let h): .accepted(framing(h))
        case .failed(let error): .status(error.status)
        }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}

private typealias Outcome = HTTPTestSupport.Outcome

private func head(_ line: String, _ fields: [String]) -> [UInt8] { HTTPTestSupport.head(line, fields) }

private func parseRequest(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult<HTTPRequestHead> {
    bytes.withUnsafeBytes { HTTPRequestParser.parse($0, limits: limits) }
}

private func requestOutcome(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> Outcome {
    HTTPTestSupport.outcome(parseRequest(bytes, limits: limits)) { $0.framing }
}

/// The head parsed from `bytes`; records an issue and throws if it is not complete.
func requireRequestHead(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) throws -> HTTPRequestHead {
    guard case .complete(let h) = bytes.withUnsafeBytes({ HTTPRequestParser.parse($0, limits: limits) }) else {
        Issue.record("not complete: \(HTTPTestSupport.text(bytes))")
        throw CancellationError()
    }
    return h
}

struct HTTPRequestCase: Sendable, CustomTestStringConvertible {
    var id: String
    var bytes: [UInt8]
    var expected: HTTPTestSupport.Outcome
    var testDescription: String { id }

    /// A POST/GET with `Host: a` plus `fields`.
    init(_ id: String, _ line: String, host: Bool = true, _ fields: [String], _ expected: HTTPTestSupport.Outcome) {
        self.id = id
        self.bytes = head(line, (host ? ["Host: a"] : []) + fields)
        self.expected = expected
    }

    init(_ id: String, raw: String, _ expected: HTTPTestSupport.Outcome) {
        self.init(id, bytes: Array(raw.utf8), expected)
    }

    init(_ id: String, bytes: [UInt8], _ expected: HTTPTestSupport.Outcome) {
        self.id = id
        self.bytes = bytes
        self.expected = expected
    }
}

private let post = "POST /u HTTP/1.1"
private let get = "GET / HTTP/1.1"
private let bad = Outcome.status(400)

private let framingCases: [HTTPRequestCase] = [
    HTTPRequestCase("H1 CL then TE", post, ["Content-Length: 3", "Transfer-Encoding: chunked"], bad),
    HTTPRequestCase("H1 TE then CL", post, ["Transfer-Encoding: chunked", "Content-Length: 3"], bad),
    HTTPRequestCase("H2 two different CL", post, ["Content-Length: 3", "Content-Length: 4"], bad),
    HTTPRequestCase("H3 two equal CL", post, ["Content-Length: 3", "Content-Length: 3"], bad),
    HTTPRequestCase("H3 CL list 3, 3", post, ["Content-Length: 3, 3"], bad),
    HTTPRequestCase("H4 CL +3", post, ["Content-Length: +3"], bad),
    HTTPRequestCase("H4 CL -1", post, ["Content-Length: -1"], bad),
    HTTPRequestCase("H4 CL 0x3", post, ["Content-Length: 0x3"], bad),
    HTTPRequestCase("H4 CL empty", post, ["Content-Length:"], bad),
    HTTPRequestCase("H4 CL 3 3", post, ["Content-Length: 3 3"], bad),
    HTTPRequestCase("H4 CL OWS trimmed", post, ["Content-Length: \t3 "], .accepted(.contentLength(3))),
    HTTPRequestCase("H4 CL 0", post, ["Content-Length: 0"], .accepted(.contentLength(0))),
    HTTPRequestCase("H5 CL 2^64+3", post, ["Content-Length: 18446744073709551619"], bad),
    HTTPRequestCase("H5 CL 2^63", post, ["Content-Length: 9223372036854775808"], bad),
    HTTPRequestCase("H5 CL 2^62+1", post, ["Content-Length: 4611686018427387905"], bad),
    HTTPRequestCase("H5 CL 2^62", post, ["Content-Length: 4611686018427387904"], .accepted(.contentLength(1 << 62))),
    HTTPRequestCase("H5 CL 30 digits", post, ["Content-Length: 999999999999999999999999999999"], bad),
    HTTPRequestCase("H6 chunked, gzip", post, ["Transfer-Encoding: chunked, gzip"], bad),
    HTTPRequestCase("H6 gzip, chunked", post, ["Transfer-Encoding: gzip, chunked"], .status(501)),
    HTTPRequestCase(
        "H6 gzip then chunked fields", post, ["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
        .status(501)),
    HTTPRequestCase("H6 identity", post, ["Transfer-Encoding: identity"], bad),
    HTTPRequestCase("H6 xchunked", post, ["Transfer-Encoding: xchunked"], bad),
    HTTPRequestCase("H6 chunked;x=1", post, ["Transfer-Encoding: chunked;x=1"], bad),
    HTTPRequestCase("H6 empty TE", post, ["Transfer-Encoding:"], bad),
    HTTPRequestCase("H6 empty element", post, ["Transfer-Encoding: , chunked"], bad),
    HTTPRequestCase("H7 chunked twice in one field", post, ["Transfer-Encoding: chunked, chunked"], bad),
    HTTPRequestCase(
        "H7 chunked in two fields", post, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], bad),
    HTTPRequestCase("H8 TE on HTTP/1.0", "POST / HTTP/1.0", ["Transfer-Encoding: chunked"], bad),
    HTTPRequestCase("H9 space before colon", post, ["Transfer-Encoding : chunked"], bad),
    HTTPRequestCase("H10 HTAB before value", post, ["Transfer-Encoding:\tchunked"], .accepted(.chunked)),
    HTTPRequestCase("H10 OWS around list", post, ["Transfer-Encoding: \t CHUNKED \t"], .accepted(.chunked)),
    HTTPRequestCase("no body fields", "GET / HTTP/1.1", [], .accepted(.none)),
]

private let obsText: [UInt8] =
    Array("GET / HTTP/1.1\r\nHost: a\r\nX: ".utf8) + [0x80, 0xC3, 0xA9, 0xFF, 0x0D, 0x0A, 0x0D, 0x0A]

private let syntaxCases: [HTTPRequestCase] = [
    HTTPRequestCase("H21 bare LF everywhere", raw: "GET / HTTP/1.1\nHost: a\n\n", bad),
    HTTPRequestCase("H21 bare LF after request line", raw: "GET / HTTP/1.1\nHost: a\r\n\r\n", bad),
    HTTPRequestCase("H21 bare LF after field", raw: "GET / HTTP/1.1\r\nHost: a\n\r\n", bad),
    HTTPRequestCase("H21 bare LF ending head", raw: "GET / HTTP/1.1\r\nHost: a\r\n\n", bad),
    HTTPRequestCase("H22 bare CR in value", get, ["X: a\rb"], bad),
    HTTPRequestCase("H22 bare CR ending field", raw: "GET / HTTP/1.1\r\nHost: a\r\rX: b\r\n\r\n", bad),
    HTTPRequestCase("H22 bare CR in request line", raw: "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", bad),
    HTTPRequestCase("H23 obs-fold SP", get, ["X: a", " b"], bad),
    HTTPRequestCase("H23 obs-fold HTAB", get, ["X: a", "\tb"], bad),
    HTTPRequestCase("H24 space in name", get, ["X Y: a"], bad),
    HTTPRequestCase("H24 @ in name", get, ["X@: a"], bad),
    HTTPRequestCase("H24 ( in name", get, ["X(: a"], bad),
    HTTPRequestCase("H24 line without colon", get, ["X-No-Colon"], bad),
    HTTPRequestCase("H25 underscore name", get, ["X_Forwarded_For: 1.2.3.4"], .accepted(.none)),
    HTTPRequestCase("H26 empty name", get, [": x"], bad),
    HTTPRequestCase("H27 NUL in value", get, ["X: a\u{0}b"], bad),
    HTTPRequestCase("H28 0x01 in value", get, ["X: a\u{1}b"], bad),
    HTTPRequestCase("H28 DEL in value", get, ["X: a\u{7F}b"], bad),
    HTTPRequestCase("H29 obs-text in value", bytes: obsText, .accepted(.none)),
    HTTPRequestCase("H29 HTAB inside value", get, ["X: a\tb"], .accepted(.none)),
    HTTPRequestCase("H30 NUL in target", "GET /a\u{0}b HTTP/1.1", [], bad),
    HTTPRequestCase("H30 SP in target", "GET /a b HTTP/1.1", [], bad),
    HTTPRequestCase("H30 CTL in target", "GET /a\u{1}b HTTP/1.1", [], bad),
    HTTPRequestCase("H30 DEL in target", "GET /a\u{7F}b HTTP/1.1", [], bad),
    HTTPRequestCase("H30 non-ASCII in target", "GET /é HTTP/1.1", [], bad),
    HTTPRequestCase("H30 fragment in target", "GET /a#b HTTP/1.1", [], bad),
    HTTPRequestCase("H31 two SP after method", "GET  / HTTP/1.1", [], bad),
    HTTPRequestCase("H31 two SP after target", "GET /  HTTP/1.1", [], bad),
    HTTPRequestCase("H31 trailing SP", "GET / HTTP/1.1 ", [], bad),
    HTTPRequestCase("H31 HTAB separator", "GET\t/ HTTP/1.1", [], bad),
    HTTPRequestCase("H31 leading SP", " GET / HTTP/1.1", [], bad),
]

private let versionAndHostCases: [HTTPRequestCase] = [
    HTTPRequestCase("H35 HTTP/0.9", raw: "GET /\r\n\r\n", bad),
    HTTPRequestCase("H35 HTTP/0.9 line only", raw: "GET /\r\n", bad),
    HTTPRequestCase("H36 HTTP/1.2 is 1.1", "GET / HTTP/1.2", [], .accepted(.none)),
    HTTPRequestCase("H37 HTTP/2.0", "GET / HTTP/2.0", [], .status(505)),
    HTTPRequestCase("H37 HTTP/3.0", "GET / HTTP/3.0", [], .status(505)),
    HTTPRequestCase("H37 lowercase http", "GET / http/1.1", [], bad),
    HTTPRequestCase("H37 HTTP/1.10", "GET / HTTP/1.10", [], bad),
    HTTPRequestCase("H37 HTTP/1", "GET / HTTP/1", [], bad),
    HTTPRequestCase("H37 HTTP/1.x", "GET / HTTP/1.x", [], bad),
    HTTPRequestCase("H38 1.1 without Host", get, host: false, [], bad),
    HTTPRequestCase("H38 1.0 without Host", "GET / HTTP/1.0", host: false, [], .accepted(.none)),
    HTTPRequestCase("H39 two Host", get, ["Host: b"], bad),
    HTTPRequestCase("H39 Host with SP", get, host: false, ["Host: a b"], bad),
    HTTPRequestCase("H39 Host with slash", get, host: false, ["Host: a/b"], bad),
    HTTPRequestCase("H39 empty Host", get, host: false, ["Host:"], .accepted(.none)),
    HTTPRequestCase("H40 absolute-form other Host", "GET http://b/x HTTP/1.1", [], bad),
    HTTPRequestCase("H40 absolute-form same Host", "GET http://a/x HTTP/1.1", [], .accepted(.none)),
    HTTPRequestCase("H40 absolute-form case", "GET HTTPS://A?q HTTP/1.1", [], .accepted(.none)),
    HTTPRequestCase("H40 absolute-form port differs", "GET http://a:8080/ HTTP/1.1", [], bad),
    HTTPRequestCase("H40 userinfo", "GET http://u@a/ HTTP/1.1", [], bad),
    HTTPRequestCase("H40 empty authority", "GET http:///x HTTP/1.1", [], bad),
    HTTPRequestCase("H40 other scheme", "GET ftp://a/ HTTP/1.1", [], bad),
    HTTPRequestCase("H40 relative target", "GET a/b HTTP/1.1", [], bad),
]

private let methodCases: [HTTPRequestCase] = [
    HTTPRequestCase("H41 lowercase get", "get / HTTP/1.1", [], .status(501)),
    HTTPRequestCase("H41 unknown token", "FOO / HTTP/1.1", [], .status(501)),
    HTTPRequestCase("H41 non-token G(T", "G(T / HTTP/1.1", [], bad),
    HTTPRequestCase("H42 CONNECT", "CONNECT a:443 HTTP/1.1", [], .status(405)),
    HTTPRequestCase("H44 h2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", bad),
    HTTPRequestCase("asterisk-form OPTIONS", "OPTIONS * HTTP/1.1", [], .accepted(.none)),
    HTTPRequestCase("asterisk-form GET", "GET * HTTP/1.1", [], bad),
    HTTPRequestCase("H46 Expect 200-bogus", post, ["Expect: 200-bogus", "Content-Length: 1"], .status(417)),
    HTTPRequestCase(
        "H45 Expect 100-continue", post, ["Expect: 100-Continue", "Content-Length: 1"],
        .accepted(.contentLength(1))),
    HTTPRequestCase(
        "H47 CRLFs before request line", raw: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .accepted(.none)),
    HTTPRequestCase("H47 bare LF before request line", raw: "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", bad),
]

@Suite("HTTP request parser")
struct HTTPRequestParserTests {
    @Test(arguments: framingCases)
    func requestFraming(_ c: HTTPRequestCase) {
        #expect(requestOutcome(c.bytes) == c.expected)
    }

    @Test(arguments: syntaxCases)
    func requestSyntax(_ c: HTTPRequestCase) {
        #expect(requestOutcome(c.bytes) == c.expected)
    }

    @Test(arguments: versionAndHostCases)
    func requestVersionAndHost(_ c: HTTPRequestCase) {
        #expect(requestOutcome(c.bytes) == c.expected)
    }

    @Test(arguments: methodCases)
    func requestMethodTargetExpect(_ c: HTTPRequestCase) {
        #expect(requestOutcome(c.bytes) == c.expected)
    }

    /// Every strict prefix of a request is either incomplete or already fails with the final verdict.
    @Test(arguments: framingCases + syntaxCases + versionAndHostCases + methodCases)
    func prefixesNeverDisagree(_ c: HTTPRequestCase) {
        for n in 0..<c.bytes.count {
            let partial = requestOutcome(Array(c.bytes.prefix(n)))
            #expect(partial == .incomplete || partial == c.expected, "prefix \(n): \(partial)")
            if case .accepted = partial { Issue.record("prefix \(n) accepted") }
        }
    }

    @Test func tokenMapMatchesRFC9110() {
        #expect(httpTokenMap.utf8CodeUnitCount == 256)
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(byte.isTokenChar == tchar.contains(byte), "byte \(byte)")
        }
    }

    @Test func badRequestLineFailsBeforeTheHeadIsComplete() {
        #expect(requestOutcome(Array("G(T / HTTP/1.1\r\nHost: a\r\n".utf8)) == bad)
        #expect(requestOutcome(Array("GET / HTTP/2.0\r\n".utf8)) == .status(505))
        #expect(requestOutcome(Array("CONNECT a:443 HTTP/1.1\r\n".utf8)) == .status(405))
        #expect(requestOutcome(Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8)) == .incomplete)
    }

    @Test func limits() {
        let limits = HTTPLimits(maxRequestLine: 100, maxHeaderBytes: 300, maxHeaderCount: 5)
        let line100 = "GET /" + String(repeating: "a", count: 100 - 14) + " HTTP/1.1"
        #expect(line100.utf8.count == 100)
        #expect(requestOutcome(head(line100, ["Host: a"]), limits: limits) == .accepted(.none))
        let line101 = "GET /" + String(repeating: "a", count: 101 - 14) + " HTTP/1.1"
        #expect(requestOutcome(head(line101, ["Host: a"]), limits: limits) == .status(414), "H32 complete")
        #expect(requestOutcome(Array(line100.utf8) + [0x0D], limits: limits) == .incomplete, "CR may end it")
        #expect(requestOutcome(Array(line101.utf8), limits: limits) == .status(414), "H32 incomplete")
        #expect(
            requestOutcome(Array(("GET /" + String(repeating: "a", count: 200)).utf8), limits: limits)
                == .status(414), "H32 incomplete, no version yet")

        let fields5 = (1...5).map { "X-\($0): v" }
        #expect(requestOutcome(head("GET / HTTP/1.1", ["Host: a"] + fields5), limits: limits) == .status(431), "H34")
        #expect(
            requestOutcome(head("GET / HTTP/1.1", ["Host: a"] + fields5.dropLast()), limits: limits)
                == .accepted(.none))

        // Exactly maxHeaderBytes is accepted, one more is 431, complete or not (H33).
        let base = head("GET / HTTP/1.1", ["Host: a", "X: "]).count
        let exact = head("GET / HTTP/1.1", ["Host: a", "X: " + String(repeating: "v", count: 300 - base)])
        #expect(exact.count == 300)
        #expect(requestOutcome(exact, limits: limits) == .accepted(.none))
        let over = head("GET / HTTP/1.1", ["Host: a", "X: " + String(repeating: "v", count: 301 - base)])
        #expect(requestOutcome(over, limits: limits) == .status(431))
        #expect(requestOutcome(Array(over.prefix(300)), limits: limits) == .status(431))
        #expect(requestOutcome(Array(over.prefix(299)), limits: limits) == .incomplete)
        #expect(
            requestOutcome(Array(repeating: 0x0D, count: 1) + [0x0A] + exact, limits: limits) == .status(431),
            "leading empty lines count")
    }

    @Test func defaultLimitsFromTheCatalogue() {
        let target = "/" + String(repeating: "a", count: 70 * 1024)
        #expect(requestOutcome(head("GET \(target) HTTP/1.1", ["Host: a"])) == .status(414), "H32")
        #expect(requestOutcome(Array("GET \(target)".utf8)) == .status(414), "H32 still arriving")
        let big = "X: " + String(repeating: "v", count: 70 * 1024)
        #expect(requestOutcome(head("GET / HTTP/1.1", ["Host: a", big])) == .status(431), "H33")
        #expect(requestOutcome(Array(head("GET / HTTP/1.1", ["Host: a", big]).prefix(40_000))) == .status(431))
        let many = (1...150).map { "X-\($0): v" }
        #expect(requestOutcome(head("GET / HTTP/1.1", ["Host: a"] + many)) == .status(431), "H34")
        #expect(requestOutcome(head("GET / HTTP/1.1", ["Host: a"] + many.prefix(99))) == .accepted(.none))
    }

    @Test func headFields() throws {
        let h = try requireRequestHead(
            head("POST /p?q=1 HTTP/1.1", ["host: Example.com:8080", "Content-Length: 5", "X:  a b \t"]))
        #expect(h.method == "POST")
        #expect(h.target == "/p?q=1")
        #expect(h.versionMinor == 1)
        #expect(h.host == "Example.com:8080")
        #expect(h.framing == .contentLength(5))
        #expect(!h.isHEAD && !h.isIdempotent && !h.expectContinue)
        #expect(h.firstValue(forName: "x") == "a b")
        #expect(h.fields.map(\.name) == ["host", "Content-Length", "X"])
        #expect(try requireRequestHead(head("HEAD / HTTP/1.1", ["Host: a"])).isHEAD)
        #expect(try requireRequestHead(head("DELETE / HTTP/1.1", ["Host: a"])).isIdempotent)
        #expect(try requireRequestHead(head("GET http://a/x HTTP/1.0", [])).host == "a", "authority stands in for Host")
    }

    @Test(arguments: [
        ("POST / HTTP/1.1", ["Content-Length: 5"], true),
        ("POST / HTTP/1.1", ["Transfer-Encoding: chunked"], true),
        ("POST / HTTP/1.1", ["Content-Length: 0"], false),
        ("GET / HTTP/1.1", [], false),
        ("POST / HTTP/1.0", ["Content-Length: 5"], false),
    ])
    func h45ExpectContinueOnlyWithABody(_ line: String, _ fields: [String], _ expected: Bool) throws {
        let h = try requireRequestHead(head(line, ["Host: a", "Expect: 100-continue"] + fields))
        #expect(h.expectContinue == expected)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1", [String](), true),
        ("GET / HTTP/1.1", ["Connection: close"], false),
        ("GET / HTTP/1.1", ["Connection: keep-alive, CLOSE"], false),
        ("GET / HTTP/1.1", ["Connection: Upgrade", "Connection: close"], false),
        ("GET / HTTP/1.0", [], false),
        ("GET / HTTP/1.0", ["Connection: Keep-Alive"], true),
        ("GET / HTTP/1.0", ["Connection: keep-alive, close"], false),
    ])
    func keepAlive(_ line: String, _ fields: [String], _ expected: Bool) throws {
        #expect(try requireRequestHead(head(line, ["Host: a"] + fields)).keepAlive == expected)
    }

    @Test func h17BodyContainingARequestIsBody() throws {
        let inner = Array("GET /admin HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        let outer = head("GET / HTTP/1.1", ["Host: a", "Content-Length: \(inner.count)"])
        let h = try requireRequestHead(outer + inner)
        #expect(h.framing == .contentLength(UInt64(inner.count)))
        #expect(h.headLength == outer.count)
    }

    @Test func h18PipelinedRequestsParseOneAtATime() throws {
        let first = head("GET /1 HTTP/1.1", ["Host: a"])
        let second = head("GET /2 HTTP/1.1", ["Host: a"])
        let h1 = try requireRequestHead(first + second)
        #expect(h1.target == "/1" && h1.headLength == first.count)
        let h2 = try requireRequestHead(Array((first + second)[h1.headLength...]))
        #expect(h2.target == "/2" && h2.headLength == second.count)
    }

    @Test func h47LeadingEmptyLinesAreCounted() throws {
        let h = try requireRequestHead(Array("\r\n\r\n".utf8) + head("GET / HTTP/1.1", ["Host: a"]))
        #expect(h.headLength == 4 + head("GET / HTTP/1.1", ["Host: a"]).count)
        #expect(requestOutcome(Array("\r\n\r".utf8)) == .incomplete)
        #expect(requestOutcome(Array("\r\nX".utf8)) == .incomplete)
        #expect(requestOutcome(Array("\rX".utf8)) == bad)
    }

    /// Seeded mutations of valid heads: no trap, and a prefix never gets a different verdict than the whole.
    @Test(arguments: [1, 2, 3, 4])
    func mutatedRequestsNeverDisagreeWithTheirPrefixes(seed: UInt64) {
        var rng = MutationRNG(seed: seed)
        let seeds = [
            head(post, ["Host: a", "Content-Length: 3", "Connection: close, X-A"]),
            head("GET http://a/x?y HTTP/1.0", ["X-Forwarded-For: 1.2.3.4", "Transfer-Encoding: chunked"]),
        ]
        let alphabet = Array(" \t\r\n:,;0aZ-_@\u{0}\u{7F}".utf8) + [0x80, 0xFF]
        for _ in 0..<150 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + rng.next() % 3) {
                let at = Int(rng.next() % UInt64(bytes.count))
                let byte = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                switch rng.next() % 3 {
                case 0: bytes[at] = byte
                case 1: bytes.insert(byte, at: at)
                default: bytes.remove(at: at)
                }
            }
            let whole = requestOutcome(bytes)
            if case .complete(let h) = parseRequest(bytes) {
                #expect(h.headLength <= bytes.count)
                _ = h.upstreamHead(clientAddress: "c", forwardedProto: "http")
            }
            for n in 0..<bytes.count {
                let partial = requestOutcome(Array(bytes.prefix(n)))
                guard partial == .incomplete || partial == whole || whole == .incomplete else {
                    Issue.record(
                        "\(HTTPTestSupport.text(bytes).debugDescription): prefix \(n) \(partial), whole \(whole)")
                    break
                }
            }
        }
    }
}

/// A tiny seeded generator so failures replay.
private struct MutationRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

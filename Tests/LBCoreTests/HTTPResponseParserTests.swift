import Testing

@testable import LBCore

// Response-head parser (bad-inputs B5–B8, B11, B12) and the head lbd sends back to the client.

private typealias Outcome = HTTPTestSupport.Outcome

private func head(_ line: String, _ fields: [String]) -> [UInt8] { HTTPTestSupport.head(line, fields) }

private func parseResponse(
    _ bytes: [UInt8], head: Bool = false, max: Int = 65536
) -> HTTPParseResult<HTTPResponseHead> {
    bytes.withUnsafeBytes { HTTPResponseParser.parse($0, requestWasHEAD: head, maxHeaderBytes: max) }
}

private func responseOutcome(_ bytes: [UInt8], head: Bool = false, max: Int = 65536) -> Outcome {
    HTTPTestSupport.outcome(parseResponse(bytes, head: head, max: max)) { $0.framing }
}

private func requireResponse(_ bytes: [UInt8], head: Bool = false) throws -> HTTPResponseHead {
    guard case .complete(let h) = parseResponse(bytes, head: head) else {
        Issue.record("not complete: \(responseOutcome(bytes, head: head))")
        throw CancellationError()
    }
    return h
}

struct HTTPResponseCase: Sendable, CustomTestStringConvertible {
    var id: String
    var bytes: [UInt8]
    var requestWasHEAD = false
    var expected: HTTPTestSupport.Outcome
    /// Checked when the head is accepted.
    var keepAlive = true
    var testDescription: String { id }
}

private let ok = "HTTP/1.1 200 OK"
private let failed = Outcome.status(400)

private func response(
    _ id: String, _ line: String, _ fields: [String], head: Bool = false, _ expected: Outcome, keepAlive: Bool = true
) -> HTTPResponseCase {
    HTTPResponseCase(
        id: id, bytes: HTTPTestSupport.head(line, fields), requestWasHEAD: head, expected: expected,
        keepAlive: keepAlive)
}

private func raw(_ id: String, _ text: String, _ expected: Outcome) -> HTTPResponseCase {
    HTTPResponseCase(id: id, bytes: Array(text.utf8), expected: expected)
}

private let responseCases: [HTTPResponseCase] = [
    raw("B5 garbage status line", "HELLO THERE\r\n\r\n", failed),
    raw("B5 garbage, no CRLF yet", "HELLO", failed),
    raw("B5 HTTP/0.9-style body", "<html>", failed),
    raw("B5 lowercase http", "http/1.1 200 OK\r\n\r\n", failed),
    raw("B5 HTTP/2", "HTTP/2 200\r\n\r\n", failed),
    raw("B5 status 2OO", "HTTP/1.1 2OO OK\r\n\r\n", failed),
    raw("B5 status 600", "HTTP/1.1 600 X\r\n\r\n", failed),
    raw("B5 status 099", "HTTP/1.1 099 X\r\n\r\n", failed),
    raw("B5 two-digit status", "HTTP/1.1 20 OK\r\n\r\n", failed),
    raw("B5 no SP before reason", "HTTP/1.1 200OK\r\n\r\n", failed),
    raw("B5 double SP", "HTTP/1.1  200 OK\r\n\r\n", failed),
    raw("B5 bad line, head incomplete", "HTTP/1.1 2OO OK\r\nServer: x\r\n", failed),
    raw("101 is never expected", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", failed),
    raw("no reason, no SP", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", .accepted(.contentLength(0))),
    response("B6 two different CL", ok, ["Content-Length: 7", "Content-Length: 5"], failed),
    response("B6 two equal CL", ok, ["Content-Length: 5", "Content-Length: 5"], failed),
    response("bad CL", ok, ["Content-Length: 5x"], failed),
    response("CL over 2^62", ok, ["Content-Length: 18446744073709551619"], failed),
    response(
        "B7 CL+TE: chunked wins, no reuse", ok, ["Content-Length: 5", "Transfer-Encoding: chunked"],
        .accepted(.chunked), keepAlive: false),
    response("TE gzip, chunked", ok, ["Transfer-Encoding: gzip, chunked"], failed),
    response("TE chunked twice", ok, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], failed),
    response("TE identity", ok, ["Transfer-Encoding: identity"], failed),
    response("TE in HTTP/1.0", "HTTP/1.0 200 OK", ["Transfer-Encoding: chunked"], failed),
    response("B8 space before colon", ok, ["Content-Length : 5"], failed),
    response("obs-fold", ok, ["X: a", " b", "Content-Length: 0"], failed),
    response("NUL in value", ok, ["X: a\u{0}", "Content-Length: 0"], failed),
    response("bare CR in value", ok, ["X: a\rb", "Content-Length: 0"], failed),
    raw("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", failed),
    response("B12 no CL or TE: until close", ok, ["Server: x"], .accepted(.untilClose), keepAlive: false),
    response("CL", ok, ["Content-Length: 12"], .accepted(.contentLength(12))),
    response("chunked", ok, ["Transfer-Encoding: Chunked"], .accepted(.chunked)),
    response("HEAD: no body", ok, ["Content-Length: 12"], head: true, .accepted(.none)),
    response("HEAD without CL keeps the connection", ok, [], head: true, .accepted(.none)),
    response("204: no body", "HTTP/1.1 204 No Content", [], .accepted(.none)),
    response("304 with CL: no body", "HTTP/1.1 304 Not Modified", ["Content-Length: 99"], .accepted(.none)),
    response("B11 100 Continue", "HTTP/1.1 100 Continue", [], .accepted(.none)),
    response("103 Early Hints", "HTTP/1.1 103 Early Hints", ["Link: </a>"], .accepted(.none)),
    response(
        "1.1 Connection: close", ok, ["Content-Length: 0", "Connection: close"], .accepted(.contentLength(0)),
        keepAlive: false),
    response(
        "1.0 without keep-alive", "HTTP/1.0 200 OK", ["Content-Length: 0"], .accepted(.contentLength(0)),
        keepAlive: false),
    response(
        "1.0 keep-alive", "HTTP/1.0 200 OK", ["Content-Length: 0", "Connection: Keep-Alive"],
        .accepted(.contentLength(0))),
    response("HTTP/1.2 is 1.1", "HTTP/1.2 200 OK", ["Content-Length: 0"], .accepted(.contentLength(0))),
    response(
        "obs-text in reason and value", "HTTP/1.1 200 \u{e9}t\u{e9}", ["X: \u{ff}", "Content-Length: 0"],
        .accepted(.contentLength(0))),
]

@Suite("HTTP response parser and client head")
struct HTTPResponseParserTests {
    @Test(arguments: responseCases)
    func responseHead(_ c: HTTPResponseCase) {
        let result = parseResponse(c.bytes, head: c.requestWasHEAD)
        #expect(HTTPTestSupport.outcome(result) { $0.framing } == c.expected)
        if case .complete(let h) = result {
            #expect(h.keepAlive == c.keepAlive)
            #expect(h.headLength == c.bytes.count)
        }
        for n in 0..<c.bytes.count {
            let partial = responseOutcome(Array(c.bytes.prefix(n)), head: c.requestWasHEAD)
            #expect(partial == .incomplete || partial == c.expected, "prefix \(n): \(partial)")
        }
    }

    @Test func b11InterimThenFinalOnOneConnection() throws {
        let interim = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
        let final = head("HTTP/1.1 200 OK", ["Content-Length: 2"])
        let first = try requireResponse(interim + final + Array("hi".utf8))
        #expect(first.isInterim && first.status == 100 && first.headLength == interim.count)
        let second = try requireResponse(Array((interim + final)[first.headLength...]))
        #expect(!second.isInterim && second.status == 200 && second.framing == .contentLength(2))
    }

    @Test func b8Limits() {
        let big = head(ok, ["X: " + String(repeating: "v", count: 100 * 1024)])
        #expect(responseOutcome(big) == failed)
        #expect(responseOutcome(Array(big.prefix(65536))) == failed, "fails before the head completes")
        #expect(responseOutcome(Array(big.prefix(65535))) == .incomplete)
        let exact = head(ok, ["Content-Length: 0"])
        #expect(responseOutcome(exact, max: exact.count) == .accepted(.contentLength(0)))
        #expect(responseOutcome(exact, max: exact.count - 1) == failed)
        let many = (0...HTTPResponseParser.maxFieldCount).map { "X-\($0): v" }
        #expect(responseOutcome(head(ok, many)) == failed)
    }

    private func client(_ response: [String], version: Int = 1, close: Bool = false, head: Bool = false) throws
        -> String
    {
        let bytes = HTTPTestSupport.head(response[0], Array(response.dropFirst()))
        let h = try requireResponse(bytes, head: head)
        return HTTPTestSupport.text(h.clientHead(clientVersionMinor: version, closeAfter: close))
    }

    @Test func clientHeadDropsHopByHopAndNominated() throws {
        let out = try client([
            "HTTP/1.1 200 OK", "Content-Length: 2", "Connection: keep-alive, X-Internal", "Keep-Alive: timeout=5",
            "X-Internal: secret", "Proxy-Connection: x", "Trailer: X", "Upgrade: h2c", "TE: trailers",
            "Proxy-Authenticate: Basic", "Server:   s  ", "Set-Cookie: a=1", "Set-Cookie: b=2",
        ])
        #expect(
            out == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: s\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n")
    }

    @Test func clientHeadConnectionHandling() throws {
        let cl = ["HTTP/1.1 200 OK", "Content-Length: 2"]
        #expect(try client(cl, close: true) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        #expect(try client(cl, version: 0) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n")
        #expect(
            try client(cl, version: 0, close: true)
                == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        let untilClose = try client(["HTTP/1.0 200 OK", "Server: s"])
        #expect(untilClose == "HTTP/1.1 200 OK\r\nServer: s\r\nConnection: close\r\n\r\n", "B12 closes")
        #expect(try client(["HTTP/1.1 100 Continue"], close: true) == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(
            try client(["HTTP/1.0 404 Not  Found", "Content-Length: 0"], close: true)
                == "HTTP/1.1 404 Not  Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "reason as sent")
        #expect(try client(["HTTP/1.1 200", "Content-Length: 0"]) == "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")
    }

    @Test func clientHeadChunked() throws {
        let chunked = ["HTTP/1.1 200 OK", "Transfer-Encoding:  CHUNKED"]
        #expect(try client(chunked) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(try client(chunked, version: 0) == "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "1.0 gets raw body")
        let both = ["HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked", "Connection: keep-alive"]
        #expect(try client(both) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "B7 drops CL")
        #expect(try client(chunked, head: true) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        let h = try requireResponse(HTTPTestSupport.head(chunked[0], [chunked[1]]))
        #expect(h.forcesClientClose(clientVersionMinor: 0) && !h.forcesClientClose(clientVersionMinor: 1))
        #expect(h.reason == "OK" && h.firstValue(forName: "transfer-encoding") == "CHUNKED")
    }
}

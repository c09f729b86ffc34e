import Testing

@testable import LBCore

// The request head lbd sends upstream (bad-inputs H25, H43–H45, H48; RFC 9110 §7.6.1).

@Suite("Upstream request head")
struct HTTPForwardingTests {
    private func upstream(_ line: String, _ fields: [String], client: String = "10.0.0.1", proto: String = "http")
        throws -> String
    {
        let h = try requireRequestHead(HTTPTestSupport.head(line, fields))
        return HTTPTestSupport.text(h.upstreamHead(clientAddress: client, forwardedProto: proto))
    }

    private let lbdFields = "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"

    @Test func hopByHopExpectAndUpgradeAreRemoved() throws {
        let out = try upstream(
            "GET /p?q HTTP/1.1",
            [
                "Host: a", "User-Agent: x", "Connection: keep-alive, Upgrade", "Keep-Alive: 5", "Proxy-Connection: x",
                "TE: trailers", "Trailer: X", "Upgrade: h2c", "Proxy-Authorization: Basic eA==",
                "Proxy-Authenticate: y", "Expect: 100-continue", "Accept:   */*  ",
            ])
        #expect(out == "GET /p?q HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nAccept: */*\r\n" + lbdFields)
    }

    @Test func h43WebsocketUpgradeIsStripped() throws {
        let out = try upstream(
            "GET /ws HTTP/1.1",
            [
                "Host: a", "Connection: Upgrade", "Upgrade: websocket",
                "Sec-WebSocket-Key: k",
            ])
        #expect(out == "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\n" + lbdFields)
    }

    @Test func xffIsAppendedAndXfpReplaced() throws {
        let out = try upstream(
            "GET / HTTP/1.1",
            [
                "Host: a", "X-Forwarded-For: 1.1.1.1", "x-forwarded-proto: https", "X-Forwarded-For: 2.2.2.2, 3.3.3.3",
                "X-Forwarded-For:", "Cookie: c",
            ], client: "::1", proto: "https")
        #expect(
            out == "GET / HTTP/1.1\r\nHost: a\r\nCookie: c\r\n"
                + "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, ::1\r\nX-Forwarded-Proto: https\r\n\r\n")
    }

    @Test func h48NominatedFieldsAreRemovedBeforeLbdAddsItsOwn() throws {
        let out = try upstream(
            "POST / HTTP/1.1",
            [
                "Host: a", "Connection: close, X-Forwarded-For, x-secret", "X-Forwarded-For: 6.6.6.6", "X-Secret: s",
                "Content-Length: 0",
            ])
        #expect(out == "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n" + lbdFields)
    }

    @Test func framingFieldsAndHostCannotBeNominatedAway() throws {
        let out = try upstream(
            "POST / HTTP/1.1",
            [
                "Host: a", "Connection: Content-Length, Host, Transfer-Encoding",
                "Content-Length: 3",
            ])
        #expect(out == "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n" + lbdFields)
        let chunked = try upstream(
            "POST / HTTP/1.1",
            [
                "Host: a", "Connection: transfer-encoding",
                "Transfer-Encoding:\tChunked",
            ])
        #expect(chunked == "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n" + lbdFields)
    }

    @Test func h25UnderscoreLookalikesAreStripped() throws {
        let out = try upstream(
            "GET / HTTP/1.1",
            [
                "Host: a", "X_Forwarded_For: 6.6.6.6", "x-forwarded_proto: https", "X_FORWARDED-FOR: 7.7.7.7",
                "X_Other: kept", "X-Forwarded-Host: kept",
            ])
        #expect(out == "GET / HTTP/1.1\r\nHost: a\r\nX_Other: kept\r\nX-Forwarded-Host: kept\r\n" + lbdFields)
    }

    @Test func http10RequestsGoUpstreamAsHTTP11WithHost() throws {
        #expect(
            try upstream("GET / HTTP/1.0", ["Accept: x"]) == "GET / HTTP/1.1\r\nAccept: x\r\nHost: \r\n" + lbdFields)
        #expect(try upstream("GET http://b/x HTTP/1.0", []) == "GET http://b/x HTTP/1.1\r\nHost: b\r\n" + lbdFields)
    }

    @Test func rewrittenTargetIsUsed() throws {
        var h = try requireRequestHead(HTTPTestSupport.head("GET /old HTTP/1.1", ["Host: a"]))
        h.target = "/new"
        #expect(
            HTTPTestSupport.text(h.upstreamHead(clientAddress: "c", forwardedProto: "http"))
                == "GET /new HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: c\r\nX-Forwarded-Proto: http\r\n\r\n")
    }
}

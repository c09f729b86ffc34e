// Peer sync's signed frame: round trip, and every way a frame is refused.

import Testing

@testable import LBCore

@Suite("Peer sync frames") struct PeerSyncFrameTests {
    let key = Array("0123456789abcdef-shared".utf8)
    let body = Array(#"{"backends":{"web":{"10.0.0.1:80":{"weight":7}}}}"#.utf8)

    func parse(_ bytes: [UInt8], key: [UInt8]? = nil) -> PeerSyncFrame.Parse {
        bytes.withUnsafeBytes { PeerSyncFrame.parse($0, key: key ?? self.key) }
    }

    @Test func roundTripAndPrefixes() {
        let v = SyncVersion(version: 1_700_000_000_123, node: "a1b2c3d4")
        let frame = PeerSyncFrame.encode(v, body: body, key: key)
        #expect(parse(frame) == .frame(v, body: body, length: frame.count))
        // Any prefix is incomplete, never a frame or an error.
        for n in [0, 1, 20, frame.count - body.count - 1, frame.count - 1] {
            #expect(parse(Array(frame.prefix(n))) == .incomplete)
        }
        // Bytes after the frame are not part of it.
        #expect(parse(frame + Array("extra".utf8)) == .frame(v, body: body, length: frame.count))
    }

    @Test func refusals() {
        let v = SyncVersion(version: 42, node: "n1")
        let frame = PeerSyncFrame.encode(v, body: body, key: key)
        #expect(parse(frame, key: Array("another-key-of-16+".utf8)) == .invalid("bad signature"))
        var flipped = frame
        flipped[flipped.count - 3] ^= 0x01
        #expect(parse(flipped) == .invalid("bad signature"))
        // A version or node rewritten by someone without the key.
        let forged = Array(String(decoding: frame, as: UTF8.self).replacingOccurrences(of: "LBDSYNC1 42 ", with: "LBDSYNC1 99 ").utf8)
        #expect(parse(forged) == .invalid("bad signature"))
        #expect(parse(Array("GET / HTTP/1.1\r\n\r\n".utf8)) == .invalid("not an lbd sync frame"))
        #expect(parse(Array("LBDSYNC1 x n1 2 \(String(repeating: "0", count: 64))\n{}".utf8)) == .invalid("malformed header"))
        #expect(parse(Array("LBDSYNC1 1 n1 99999999 \(String(repeating: "0", count: 64))\n".utf8)) == .invalid("malformed header"))
        #expect(parse([UInt8](repeating: 0x41, count: 300)) == .invalid("header too long"))
    }

    @Test func ordering() {
        #expect(SyncVersion(version: 1, node: "b") < SyncVersion(version: 2, node: "a"))
        #expect(SyncVersion(version: 2, node: "a") < SyncVersion(version: 2, node: "b"))
        #expect(PeerSyncFrame.hex(PeerSyncFrame.hmac(key: Array("key".utf8), Array("The quick brown fox jumps over the lazy dog".utf8)))
            == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    }
}

import Testing

@testable import LBCore

// ChunkedDecoder against bad-inputs H11–H16, fed in one piece and in pieces of every small size.

/// What decoding a whole input came to.
private struct Decoded: Equatable, CustomStringConvertible {
    var events: [ChunkedDecoder.Event] = []
    var data: [UInt8] = []
    /// Bytes after the end of the body, never touched by the decoder.
    var rest: [UInt8] = []
    var error: HTTPError?

    var description: String {
        let text = String(decoding: data, as: UTF8.self)
        return "events \(events) data \(text) rest \(rest.count) error \(String(describing: error))"
    }
}

/// Feeds `input` to a decoder `piece` bytes at a time, moving chunk data the way the proxy does.
private func decode(_ input: [UInt8], piece: Int, maxExtension: Int = 4096, maxTrailer: Int = 16384) -> Decoded {
    var decoder = ChunkedDecoder(maxExtensionBytes: maxExtension, maxTrailerBytes: maxTrailer)
    var out = Decoded()
    var buffer: [UInt8] = []
    var fed = 0
    while true {
        if decoder.isFinished { break }
        if buffer.isEmpty {
            guard fed < input.count else { break }
            let n = min(piece, input.count - fed)
            buffer.append(contentsOf: input[fed..<(fed + n)])
            fed += n
            continue
        }
        if decoder.dataRemaining > 0 {
            let n = Int(min(decoder.dataRemaining, UInt64(buffer.count)))
            out.data.append(contentsOf: buffer.prefix(n))
            buffer.removeFirst(n)
            decoder.consumedData(n)
            continue
        }
        do {
            let (consumed, event) = try buffer.withUnsafeBytes { try decoder.decode($0) }
            #expect(consumed > 0 && consumed <= buffer.count)
            #expect(event != .needMore || consumed == buffer.count, "needMore must consume everything")
            buffer.removeFirst(consumed)
            if event != .needMore { out.events.append(event) }
        } catch let error as HTTPError {
            out.error = error
            return out
        } catch {
            Issue.record("untyped error \(error)")
            return out
        }
    }
    out.rest = buffer + input[fed...]
    return out
}

private let hello: [ChunkedDecoder.Event] = [.chunkHeader(size: 5), .chunkDataEnd, .messageEnd]

private let validBodies: [(String, String, [ChunkedDecoder.Event], String)] = [
    ("one chunk", "5\r\nhello\r\n0\r\n\r\n", hello, "hello"),
    ("empty body", "0\r\n\r\n", [.messageEnd], ""),
    (
        "two chunks, hex", "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n",
        [.chunkHeader(size: 10), .chunkDataEnd, .chunkHeader(size: 11), .chunkDataEnd, .messageEnd],
        "0123456789abcdefghijk"
    ),
    ("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", hello, "hello"),
    ("H12 extension", "5;a=b\r\nhello\r\n0;last\r\n\r\n", hello, "hello"),
    ("H12 BWS before ;", "5 \t;a = \"q;x\"\r\nhello\r\n0\r\n\r\n", hello, "hello"),
    ("H12 obs-text in extension", "5;a=\u{e9}\r\nhello\r\n0\r\n\r\n", hello, "hello"),
    (
        "H16 trailers dropped",
        "5\r\nhello\r\n0\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n",
        hello, "hello"
    ),
    ("trailer with empty value", "0\r\nX:\r\n\r\n", [.messageEnd], ""),
    (
        "CRLF inside data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", [.chunkHeader(size: 4), .chunkDataEnd, .messageEnd],
        "\r\n\r\n"
    ),
]

private let invalidBodies: [(String, String)] = [
    ("H11 size over 2^64", "10000000000000001\r\n"),
    ("H11 33 hex digits of zeros", String(repeating: "0", count: 33) + "\r\n"),
    ("H11 0x5", "0x5\r\nhello\r\n0\r\n\r\n"),
    ("H11 +5", "+5\r\nhello\r\n0\r\n\r\n"),
    ("H11 -5", "-5\r\n"),
    ("H11 empty size", "\r\nhello\r\n0\r\n\r\n"),
    ("H11 empty size before ext", ";a\r\n"),
    ("H14 trailing SP", "5 \r\nhello\r\n0\r\n\r\n"),
    ("H14 trailing HTAB", "5\t\r\n"),
    ("H14 SP between digits", "5 5\r\n"),
    ("H13 bare LF after size", "5\nhello\r\n0\r\n\r\n"),
    ("H13 bare LF in extension", "5;a\nb\r\nhello\r\n0\r\n\r\n"),
    ("H13 bare LF after data", "5\r\nhello\n0\r\n\r\n"),
    ("H13 bare LF after last chunk", "0\n\r\n"),
    ("H13 bare LF ending body", "0\r\n\n"),
    ("bare CR after size", "5\rhello"),
    ("NUL in extension", "5;a\u{0}\r\n"),
    ("H15 data longer than size", "5\r\nhelloX\r\n0\r\n\r\n"),
    ("H15 no CRLF after data", "5\r\nhello0\r\n\r\n"),
    ("H15 CR without LF after data", "5\r\nhello\rX"),
    ("trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n"),
    ("trailer bare LF", "0\r\nA: b\n\r\n"),
    ("trailer bare CR", "0\r\nA: b\rc\r\n\r\n"),
    ("trailer space before colon", "0\r\nA : b\r\n\r\n"),
    ("trailer empty name", "0\r\n: b\r\n\r\n"),
    ("trailer without colon", "0\r\nAB\r\n\r\n"),
    ("trailer NUL", "0\r\nA: \u{0}\r\n\r\n"),
]

@Suite("Chunked decoder")
struct ChunkedDecoderTests {
    @Test(arguments: validBodies)
    func validBody(_ name: String, _ body: String, _ events: [ChunkedDecoder.Event], _ data: String) {
        let input = Array(body.utf8) + Array("GET /next".utf8)
        let whole = decode(input, piece: input.count)
        #expect(whole.error == nil)
        #expect(whole.events == events)
        #expect(whole.data == Array(data.utf8))
        #expect(whole.rest == Array("GET /next".utf8), "bytes after the body are left alone")
        for piece in 1...9 {
            #expect(decode(input, piece: piece) == whole, "piece \(piece)")
        }
    }

    @Test(arguments: invalidBodies)
    func invalidBody(_ name: String, _ body: String) {
        let input = Array(body.utf8)
        let whole = decode(input, piece: input.count)
        #expect(whole.error?.status == 400, "\(whole)")
        #expect(!whole.events.contains(.messageEnd))
        for piece in 1...5 {
            #expect(decode(input, piece: piece) == whole, "piece \(piece)")
        }
    }

    @Test func largestSizeIsAcceptedAndNeverWraps() {
        let max = decode(Array("FFFFFFFFFFFFFFFF\r\n".utf8), piece: 1)
        #expect(max.error == nil && max.events == [.chunkHeader(size: .max)])
        #expect(decode(Array("FFFFFFFFFFFFFFFF0\r\n".utf8), piece: 1).error?.status == 400)
    }

    @Test func extensionCap() {
        let atCap = "5;" + String(repeating: "a", count: 99) + "\r\nhello\r\n0\r\n\r\n"
        #expect(decode(Array(atCap.utf8), piece: 1, maxExtension: 100).events == hello)
        let overCap = "5;" + String(repeating: "a", count: 100) + "\r\nhello\r\n0\r\n\r\n"
        #expect(decode(Array(overCap.utf8), piece: 1, maxExtension: 100).error?.status == 400)
        let spaces = "5" + String(repeating: " ", count: 200) + ";\r\n"
        #expect(decode(Array(spaces.utf8), piece: 7, maxExtension: 100).error?.status == 400, "BWS counts")
    }

    @Test func trailerCap() {
        let trailer = "X: " + String(repeating: "v", count: 40) + "\r\n"  // 45 bytes, final CRLF makes 47
        #expect(decode(Array(("0\r\n" + trailer + "\r\n").utf8), piece: 3, maxTrailer: 47).events == [.messageEnd])
        #expect(decode(Array(("0\r\n" + trailer + "\r\n").utf8), piece: 3, maxTrailer: 46).error?.status == 400)
    }

    @Test func stepByStepContract() throws {
        var decoder = ChunkedDecoder()
        let bytes = Array("3;x\r\nabc\r\n0\r\n\r\n".utf8)
        var r = try bytes.withUnsafeBytes { try decoder.decode($0) }
        #expect(r.consumed == 5 && r.event == .chunkHeader(size: 3) && decoder.dataRemaining == 3)
        decoder.consumedData(2)
        #expect(decoder.dataRemaining == 1 && !decoder.isFinished)
        decoder.consumedData(1)
        r = try bytes[8...].withUnsafeBytes { try decoder.decode($0) }
        #expect(r.consumed == 2 && r.event == .chunkDataEnd)
        r = try bytes[10...].withUnsafeBytes { try decoder.decode(UnsafeRawBufferPointer(rebasing: $0[0..<2])) }
        #expect(r.consumed == 2 && r.event == .needMore)
        r = try bytes[12...].withUnsafeBytes { try decoder.decode($0) }
        #expect(r.consumed == 3 && r.event == .messageEnd && decoder.isFinished)
        r = try bytes.withUnsafeBytes { try decoder.decode($0) }
        #expect(r.consumed == 0 && r.event == .messageEnd, "finished decoders consume nothing")
    }
}

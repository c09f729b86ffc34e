// Moves one message body from one evbuffer to another by its framing: Content-Length bodies by
// zero-copy chain moves, chunked bodies through `ChunkedDecoder` (data moved zero-copy, framing
// re-emitted by us, so whatever a client wrote in chunk extensions or trailers never reaches the
// other side), close-delimited bodies until EOF. Shell code; the framing rules live in the decoder.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// Where a body stands.
enum BodyState {
    case done
    case length(remaining: UInt64)
    case chunked(ChunkedDecoder)
    /// Response read until the backend closes.
    case untilClose

    init(_ framing: BodyFraming, maxChunkExtension: Int) {
        switch framing {
        case .none: self = .done
        case .contentLength(let n): self = n == 0 ? .done : .length(remaining: n)
        case .chunked: self = .chunked(ChunkedDecoder(maxExtensionBytes: maxChunkExtension))
        case .untilClose: self = .untilClose
        }
    }

    var isDone: Bool {
        if case .done = self { return true }
        return false
    }
}

enum BodyPump {
    /// Moves what is available. `rechunk`: re-emit chunked framing (false: pass only the data, for
    /// an HTTP/1.0 client). Returns the number of body bytes moved. Throws on a framing error.
    static func pump(
        _ state: inout BodyState, from src: OpaquePointer, to dst: OpaquePointer, rechunk: Bool
    ) throws(HTTPError) -> Int {
        var moved = 0
        switch state {
        case .done:
            return 0
        case .length(let remaining):
            let avail = evbuffer_get_length(src)
            guard avail > 0 else { return 0 }
            let n = Int(min(UInt64(avail), remaining))
            evbuffer_remove_buffer(src, dst, n)
            moved = n
            state = remaining == UInt64(n) ? .done : .length(remaining: remaining - UInt64(n))
        case .untilClose:
            let avail = evbuffer_get_length(src)
            if avail > 0 { evbuffer_add_buffer(dst, src) }
            moved = avail
        case .chunked(var decoder):
            defer { if case .chunked = state { state = .chunked(decoder) } }
            while true {
                let avail = evbuffer_get_length(src)
                guard avail > 0 else { break }
                if decoder.dataRemaining > 0 {
                    let n = Int(min(UInt64(avail), decoder.dataRemaining))
                    evbuffer_remove_buffer(src, dst, n)
                    decoder.consumedData(n)
                    moved += n
                    continue
                }
                let peek = min(avail, 8192)
                guard let p = evbuffer_pullup(src, peek) else { break }
                let (consumed, event) = try decoder.decode(UnsafeRawBufferPointer(start: p, count: peek))
                if consumed > 0 { evbuffer_drain(src, consumed) }
                switch event {
                case .needMore:
                    if consumed == 0 { return moved }
                case .chunkHeader(let size):
                    if rechunk { appendChunkSize(dst, size) }
                case .chunkDataEnd:
                    if rechunk { addStatic(dst, "\r\n") }
                case .messageEnd:
                    if rechunk { addStatic(dst, "0\r\n\r\n") }
                    state = .done
                    return moved
                }
            }
        }
        return moved
    }

    @inline(__always)
    private static func addStatic(_ dst: OpaquePointer, _ s: StaticString) {
        _ = evbuffer_add(dst, s.utf8Start, s.utf8CodeUnitCount)
    }

    /// `<hex size>\r\n`
    static func appendChunkSize(_ dst: OpaquePointer, _ size: UInt64) {
        var buf: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of stack
        withUnsafeMutableBytes(of: &buf) { raw in
            var digits = 0
            var v = size
            repeat { digits += 1; v >>= 4 } while v > 0
            v = size
            for i in stride(from: digits - 1, through: 0, by: -1) {
                let d = UInt8(v & 0xF)
                raw[i] = d < 10 ? 48 + d : 87 + d
                v >>= 4
            }
            raw[digits] = 13
            raw[digits + 1] = 10
            _ = evbuffer_add(dst, raw.baseAddress, digits + 2)
        }
    }
}

// Incremental chunked transfer-coding decoder (RFC 9112 §7.1), used on request and response bodies.
//
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// The decoder sees only framing bytes; chunk data never passes through it (the proxy moves it between
// evbuffers itself and reports the count), so a body costs no copy here. Strict where the anchors
// differ (bad-inputs H11–H16): hex digits only, no trailing whitespace unless an extension follows,
// CRLF only, chunk extensions ignored but capped, trailers checked for syntax, capped and dropped.

/// Streaming chunked-body decoder: a pure state machine fed whatever bytes have arrived.
///
/// Drive it like this: while ``dataRemaining`` is 0 and the body is not ``isFinished``, call
/// ``decode(_:)`` on the buffered bytes and drain `consumed` bytes; on `.chunkHeader(size:)` move up
/// to ``dataRemaining`` bytes of data onward yourself and report them with ``consumedData(_:)``; on
/// `.needMore` wait for more bytes. Any thrown error is `.badRequest` (400 for a client, abort for a
/// backend); the connection must be closed. Trailer fields are validated and dropped: the proxy
/// ends its re-encoded body with `0\r\n\r\n`. Not thread-safe; owned by one connection.
public struct ChunkedDecoder: Sendable {
    /// What one call to ``ChunkedDecoder/decode(_:)`` reached.
    public enum Event: Equatable, Sendable {
        /// All given bytes were consumed without reaching an event; call again with more bytes.
        case needMore
        /// A chunk-size line with `size > 0` was consumed; ``ChunkedDecoder/dataRemaining`` is `size`.
        case chunkHeader(size: UInt64)
        /// The CRLF after a chunk's data was consumed.
        case chunkDataEnd
        /// The last chunk (`0`), the trailer section and the final CRLF were consumed.
        case messageEnd
    }

    enum State: Sendable {
        case size, sizeWhitespace, extensionBytes, sizeLF, dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue, trailerLF, finalLF, done
    }

    /// Hex digits of a chunk-size, leading zeros included; 16 already reach 2^64.
    static let maxSizeDigits = 32

    let maxExtensionBytes: Int
    let maxTrailerBytes: Int
    var state = State.size
    var size: UInt64 = 0
    var sizeDigits = 0
    var extensionBytes = 0
    var trailerBytes = 0

    /// Bytes of chunk data still to pass through before the decoder wants framing bytes again.
    /// While > 0 the caller moves data itself and reports it with ``consumedData(_:)``; ``decode(_:)``
    /// must not be called.
    public private(set) var dataRemaining: UInt64 = 0

    /// True once `.messageEnd` was returned; later ``decode(_:)`` calls consume nothing.
    public var isFinished: Bool { state == .done }

    /// - Parameters:
    ///   - maxExtensionBytes: bytes allowed after a chunk-size, from the first `;` or whitespace to
    ///     the CR (`HTTPLimits.maxChunkExtension`); above: 400.
    ///   - maxTrailerBytes: bytes allowed in the trailer section, final CRLF included; above: 400.
    public init(maxExtensionBytes: Int = 4096, maxTrailerBytes: Int = 16384) {
        self.maxExtensionBytes = maxExtensionBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// Records that the caller passed `n` bytes of chunk data onward; `0 ≤ n ≤ dataRemaining`.
    public mutating func consumedData(_ n: Int) {
        precondition(n >= 0 && UInt64(n) <= dataRemaining, "consumedData(\(n)) with \(dataRemaining) remaining")
        dataRemaining -= UInt64(n)
    }

    /// Consumes framing bytes from the front of `bytes`, up to and including the next event.
    ///
    /// Returns how many bytes it consumed (drain them) and the event reached, `.needMore` when it
    /// consumed everything without reaching one. Throws `.badRequest` for an empty or non-hex
    /// chunk-size (`0x5`, `+5`), one over 2^64, whitespace not followed by `;`, a bare CR or LF, CTLs or
    /// more than `maxExtensionBytes` in an extension, anything but CRLF right after chunk data, and
    /// bad, folded or oversized trailer fields. Precondition: ``dataRemaining`` is 0.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) throws(HTTPError) -> (consumed: Int, event: Event) {
        precondition(dataRemaining == 0, "decode called with \(dataRemaining) bytes of chunk data pending")
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            switch state {
            case .size:
                let digit = Self.hexValue(c)
                if digit < 16 {
                    sizeDigits += 1
                    let (times16, o1) = size.multipliedReportingOverflow(by: 16)
                    let (sum, o2) = times16.addingReportingOverflow(UInt64(digit))
                    guard !o1, !o2, sizeDigits <= Self.maxSizeDigits else { throw .badRequest("chunk size too large") }
                    size = sum
                    continue
                }
                guard sizeDigits > 0 else { throw .badRequest("invalid chunk size") }
                switch c {
                case HTTPByte.cr: state = .sizeLF
                case HTTPByte.semicolon: try startExtension()
                case HTTPByte.space, HTTPByte.tab:
                    try startExtension()
                    state = .sizeWhitespace
                case HTTPByte.lf: throw .badRequest("bare LF after chunk size")
                default: throw .badRequest("invalid chunk size")
                }
            case .sizeWhitespace:
                try countExtensionByte()
                if c == HTTPByte.semicolon {
                    state = .extensionBytes
                } else if !c.isOWS {
                    throw .badRequest("whitespace after chunk size")
                }
            case .extensionBytes:
                if c == HTTPByte.cr {
                    state = .sizeLF
                } else if c == HTTPByte.lf {
                    throw .badRequest("bare LF in chunk extension")
                } else if c == HTTPByte.del || (c < HTTPByte.space && c != HTTPByte.tab) {
                    throw .badRequest("control character in chunk extension")
                } else {
                    try countExtensionByte()
                }
            case .sizeLF:
                guard c == HTTPByte.lf else { throw .badRequest("bare CR in chunk line") }
                let chunkSize = size
                size = 0
                sizeDigits = 0
                if chunkSize == 0 {
                    state = .trailerLineStart
                } else {
                    state = .dataCR
                    dataRemaining = chunkSize
                    return (i, .chunkHeader(size: chunkSize))
                }
            case .dataCR:
                guard c == HTTPByte.cr else { throw .badRequest("chunk data longer than its size") }
                state = .dataLF
            case .dataLF:
                guard c == HTTPByte.lf else { throw .badRequest("bare CR after chunk data") }
                state = .size
                return (i, .chunkDataEnd)
            case .trailerLineStart, .trailerName, .trailerValue, .trailerLF, .finalLF:
                trailerBytes += 1
                guard trailerBytes <= maxTrailerBytes else { throw .badRequest("trailer section too large") }
                if try trailerByte(c) { return (i, .messageEnd) }
            case .done:
                return (0, .messageEnd)
            }
        }
        return (i, .needMore)
    }

    /// One byte of the trailer section (RFC 9112 §7.1.2, field syntax as in heads); true at its end.
    mutating func trailerByte(_ c: UInt8) throws(HTTPError) -> Bool {
        switch state {
        case .trailerLineStart:
            if c == HTTPByte.cr {
                state = .finalLF
            } else if c.isTokenChar {
                state = .trailerName
            } else {
                switch c {
                case HTTPByte.space, HTTPByte.tab: throw .badRequest("obs-fold in trailer")
                case HTTPByte.lf: throw .badRequest("bare LF in trailer")
                case HTTPByte.colon: throw .badRequest("empty trailer field name")
                default: throw .badRequest("invalid trailer field name")
                }
            }
        case .trailerName:
            if c == HTTPByte.colon {
                state = .trailerValue
            } else if !c.isTokenChar {
                throw .badRequest("invalid trailer field name")
            }
        case .trailerValue:
            if c == HTTPByte.cr {
                state = .trailerLF
            } else if c == HTTPByte.del || (c < HTTPByte.space && c != HTTPByte.tab) {
                throw .badRequest(c == HTTPByte.lf ? "bare LF in trailer" : "control character in trailer")
            }
        case .trailerLF:
            guard c == HTTPByte.lf else { throw .badRequest("bare CR in trailer") }
            state = .trailerLineStart
        case .finalLF:
            guard c == HTTPByte.lf else { throw .badRequest("bare CR after trailer section") }
            state = .done
            return true
        case .size, .sizeWhitespace, .extensionBytes, .sizeLF, .dataCR, .dataLF, .done:
            preconditionFailure("trailerByte in state \(state)")
        }
        return false
    }

    mutating func startExtension() throws(HTTPError) {
        extensionBytes = 0
        state = .extensionBytes
        try countExtensionByte()
    }

    mutating func countExtensionByte() throws(HTTPError) {
        extensionBytes += 1
        guard extensionBytes <= maxExtensionBytes else { throw .badRequest("chunk extension too long") }
    }

    /// 0...15 for a hex digit, 255 otherwise.
    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8 {
        if c &- 0x30 < 10 { return c &- 0x30 }
        let lower = c | 0x20
        if lower &- 0x61 < 6 { return lower &- 0x61 &+ 10 }
        return 255
    }
}

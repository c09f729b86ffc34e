// Errors and shared result types of the HTTP/1.1 codec. Everything in this folder is pure: it
// reads bytes handed to it by the proxy shell and returns values; no I/O, no clocks, no Foundation.
//
// Folder overview:
// - HTTPHeadParser.swift       shared scanning: end-of-head search, field lines, lists, lengths.
// - HTTPRequestHead.swift      `HTTPRequestParser`: strict request heads (RFC 9112 §2–3, §5–6).
// - HTTPResponseHead.swift     `HTTPResponseParser`: backend response heads (RFC 9112 §4, §6.3).
// - HTTPHead+Forwarding.swift  the heads lbd writes upstream and back to the client (RFC 9110 §7.6).
// - ChunkedDecoder.swift       incremental chunked-body framing (RFC 9112 §7.1).
// The catalogue of hostile inputs these answer is shared/notes/bad-inputs.md, sections A and B.

/// Why a request head, response head or chunked body was rejected.
///
/// Request-side errors map to the status lbd answers with (``status``, ``reasonPhrase``); the proxy
/// closes the client connection after every one of them. Response-side parse failures are all
/// reported as ``badRequest(_:)`` with a reason for the log, and the proxy answers the client 502.
/// A chunked-body error on either side is ``badRequest(_:)``.
public enum HTTPError: Error, Equatable, Sendable {
    /// 400: malformed syntax or ambiguous framing. The string is a short reason for the log only;
    /// never send it to the client.
    case badRequest(String)
    /// 414: the request line is longer than `HTTPLimits.maxRequestLine`.
    case uriTooLong
    /// 431: the header section exceeds `HTTPLimits.maxHeaderBytes` or `maxHeaderCount`.
    case headersTooLarge
    /// 501: a well-formed but unknown method token, or an unsupported transfer-coding.
    case notImplemented(String)
    /// 405: `CONNECT` (lbd is a reverse proxy, it never tunnels).
    case methodNotAllowed
    /// 505: a request line naming a major version other than 1 (`HTTP/2.0`, `HTTP/3.0`).
    case versionNotSupported
    /// 417: an `Expect` value other than `100-continue`.
    case expectationFailed

    /// The status code lbd answers a client with.
    public var status: Int {
        switch self {
        case .badRequest: 400
        case .uriTooLong: 414
        case .headersTooLarge: 431
        case .notImplemented: 501
        case .methodNotAllowed: 405
        case .versionNotSupported: 505
        case .expectationFailed: 417
        }
    }

    /// The standard reason phrase for ``status`` (RFC 9110 §15, RFC 6585 §5).
    public var reasonPhrase: String {
        switch self {
        case .badRequest: "Bad Request"
        case .uriTooLong: "URI Too Long"
        case .headersTooLarge: "Request Header Fields Too Large"
        case .notImplemented: "Not Implemented"
        case .methodNotAllowed: "Method Not Allowed"
        case .versionNotSupported: "HTTP Version Not Supported"
        case .expectationFailed: "Expectation Failed"
        }
    }

    /// The reason recorded for the log: the detail string when there is one, else the phrase.
    public var logReason: String {
        switch self {
        case .badRequest(let why), .notImplemented(let why): why
        default: reasonPhrase
        }
    }
}

extension HTTPError: CustomStringConvertible {
    /// `400 Bad Request (bare LF)`; for logs and test output.
    public var description: String {
        switch self {
        case .badRequest(let why), .notImplemented(let why): "\(status) \(reasonPhrase) (\(why))"
        default: "\(status) \(reasonPhrase)"
        }
    }
}

/// How the body of a message is delimited (RFC 9112 §6.3).
public enum BodyFraming: Equatable, Sendable {
    /// No body: requests without `Content-Length`/`Transfer-Encoding`, responses to HEAD, 1xx, 204, 304.
    case none
    /// Exactly this many bytes follow the head (0 is possible and means no body bytes).
    case contentLength(UInt64)
    /// A chunked body follows; decode it with ``ChunkedDecoder``.
    case chunked
    /// Responses only: the body runs until the backend closes the connection.
    case untilClose
}

/// The outcome of parsing a message head out of the bytes buffered so far.
public enum HTTPParseResult<Head> {
    /// No complete head yet and no limit exceeded; call again when more bytes arrived.
    case incomplete
    /// A complete head; its `headLength` bytes may be drained from the buffer.
    case complete(Head)
    /// The head is malformed or over a limit; answer (or 502) and close.
    case failed(HTTPError)
}

extension HTTPParseResult: Sendable where Head: Sendable {}

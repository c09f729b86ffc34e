// Serialization of the heads lbd forwards: the request towards the backend and the response towards
// the client. Both drop hop-by-hop fields and the fields a `Connection` header nominates
// (RFC 9110 §7.6.1), never the framing fields or Host (a nominated Content-Length would turn the body
// into a second request: smuggling). Lines are rebuilt as `name: value CRLF` from the parsed offsets,
// so OWS is normalized and line endings are always CRLF.

extension HTTPRequestHead {
    /// The head to send upstream, CRLF-terminated, ending with an empty line.
    ///
    /// - Request line `method SP target SP HTTP/1.1` from ``method`` and ``target`` (which the proxy
    ///   may have rewritten; they must stay free of SP, CR and LF).
    /// - The client's fields in order, except hop-by-hop ones (`Connection`, `Keep-Alive`,
    ///   `Proxy-Connection`, `TE`, `Trailer`, `Upgrade` — so no `h2c` or websocket upgrade —,
    ///   `Proxy-Authenticate`, `Proxy-Authorization`), fields nominated in `Connection` (but never
    ///   `Host`, `Content-Length`, `Transfer-Encoding`), `Expect` (lbd answers 100-continue itself),
    ///   `X-Forwarded-Proto`, and names that read `x-forwarded-for`/`x-forwarded-proto` once `_` is
    ///   taken for `-` (bad-inputs H25).
    /// - `Transfer-Encoding: chunked` in place of the client's when ``framing`` is `.chunked` (the
    ///   proxy re-encodes chunked bodies); `Content-Length` as sent.
    /// - `Host: <host>` if the client sent none (HTTP/1.0; HTTP/1.1 upstream requires it).
    /// - `X-Forwarded-For: <client's XFF values>, <clientAddress>`, or only `clientAddress` when the
    ///   client sent none or nominated it in `Connection` (H48), then `X-Forwarded-Proto`.
    ///
    /// `clientAddress` and `forwardedProto` come from lbd itself and must not contain CR or LF.
    public func upstreamHead(clientAddress: String, forwardedProto: String) -> [UInt8] {
        let fields = storage.fields
        let chunked = framing == .chunked
        let hostMissing = !fields.contains { $0.kind == .host }
        return storage.bytes.withUnsafeBufferPointer { buf -> [UInt8] in
            guard let p = buf.baseAddress else { return [] }
            let hasConnection = fields.contains { $0.kind == .connection }
            var out = [UInt8]()
            out.reserveCapacity(
                buf.count + method.utf8.count + target.utf8.count + clientAddress.utf8.count
                    + forwardedProto.utf8.count + host.utf8.count + 96)
            out.append(contentsOf: method.utf8)
            out.append(Byte.space)
            out.append(contentsOf: target.utf8)
            out.append(contentsOf: " HTTP/1.1\r\n".utf8)
            var wroteTransferEncoding = false
            var forwardXFF = true
            for f in fields {
                switch f.kind {
                case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .proxyAuthenticate,
                    .proxyAuthorization, .expect, .xForwardedProto, .forwardedUnderscored:
                    continue
                case .xForwardedFor:
                    if hasConnection && forwardXFF && isNominated(p, fields, f) { forwardXFF = false }
                    continue
                case .transferEncoding:
                    if chunked && !wroteTransferEncoding {
                        out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
                        wroteTransferEncoding = true
                    }
                    continue
                case .host, .contentLength:
                    break
                case .other:
                    if hasConnection && isNominated(p, fields, f) { continue }
                }
                appendField(&out, buf, f)
            }
            if hostMissing {
                out.append(contentsOf: "Host: ".utf8)
                out.append(contentsOf: host.utf8)
                out.append(contentsOf: "\r\n".utf8)
            }
            out.append(contentsOf: "X-Forwarded-For: ".utf8)
            if forwardXFF {
                for f in fields where f.kind == .xForwardedFor && f.valueEnd > f.valueStart {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[Int(f.valueStart)..<Int(f.valueEnd)]))
                    out.append(contentsOf: ", ".utf8)
                }
            }
            out.append(contentsOf: clientAddress.utf8)
            out.append(contentsOf: "\r\nX-Forwarded-Proto: ".utf8)
            out.append(contentsOf: forwardedProto.utf8)
            out.append(contentsOf: "\r\n\r\n".utf8)
            return out
        }
    }
}

extension HTTPResponseHead {
    /// Whether lbd must close the client connection after this response whatever else holds: the
    /// body runs until the backend closes, or is chunked and the client speaks HTTP/1.0 (so it
    /// is sent raw and delimited by the close).
    public func forcesClientClose(clientVersionMinor: Int) -> Bool {
        framing == .untilClose || (framing == .chunked && clientVersionMinor == 0)
    }

    /// The head to send to the client, CRLF-terminated, ending with an empty line.
    ///
    /// - Status line `HTTP/1.1 <status> <reason as sent>`.
    /// - The backend's fields in order, except hop-by-hop ones and those nominated in `Connection`
    ///   (never `Content-Length`/`Transfer-Encoding`).
    /// - `Transfer-Encoding: chunked` only for an HTTP/1.1 client and a response that declared it
    ///   (not on 1xx/204); an HTTP/1.0 client gets the decoded body delimited by the close.
    /// - `Content-Length` as sent, except for CL+TE responses (B7), where it is dropped.
    /// - Final responses: `Connection: close` when `closeAfter` or ``forcesClientClose(clientVersionMinor:)``;
    ///   otherwise `Connection: keep-alive` for an HTTP/1.0 client. Interim (1xx) heads get neither.
    public func clientHead(clientVersionMinor: Int, closeAfter: Bool) -> [UInt8] {
        let fields = storage.fields
        let keepChunked = clientVersionMinor >= 1 && declaresChunked && !isInterim && status != 204
        return storage.bytes.withUnsafeBufferPointer { buf -> [UInt8] in
            guard let p = buf.baseAddress else { return [] }
            let hasConnection = fields.contains { $0.kind == .connection }
            var out = [UInt8]()
            out.reserveCapacity(buf.count + 32)
            out.append(contentsOf: "HTTP/1.1 ".utf8)
            out.append(contentsOf: String(status).utf8)
            out.append(Byte.space)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[Int(reasonStart)..<Int(reasonEnd)]))
            out.append(contentsOf: "\r\n".utf8)
            var wroteTransferEncoding = false
            for f in fields {
                switch f.kind {
                case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .proxyAuthenticate,
                    .proxyAuthorization:
                    continue
                case .transferEncoding:
                    if keepChunked && !wroteTransferEncoding {
                        out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
                        wroteTransferEncoding = true
                    }
                    continue
                case .contentLength:
                    if hadContentLengthAndChunked { continue }
                case .host, .expect, .xForwardedFor, .xForwardedProto, .forwardedUnderscored, .other:
                    if hasConnection && isNominated(p, fields, f) { continue }
                }
                appendField(&out, buf, f)
            }
            if !isInterim {
                if closeAfter || forcesClientClose(clientVersionMinor: clientVersionMinor) {
                    out.append(contentsOf: "Connection: close\r\n".utf8)
                } else if clientVersionMinor == 0 {
                    out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
                }
            }
            out.append(contentsOf: "\r\n".utf8)
            return out
        }
    }
}

/// Appends `name: value CRLF` for `f`, name as sent, value OWS-trimmed.
@inline(__always)
private func appendField(_ out: inout [UInt8], _ buf: UnsafeBufferPointer<UInt8>, _ f: HTTPField) {
    out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[Int(f.nameStart)..<Int(f.nameEnd)]))
    out.append(Byte.colon)
    out.append(Byte.space)
    out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[Int(f.valueStart)..<Int(f.valueEnd)]))
    out.append(Byte.cr)
    out.append(Byte.lf)
}

/// Whether some `Connection` field lists `f`'s name among its options (case-insensitive).
private func isNominated(_ p: UnsafePointer<UInt8>, _ fields: [HTTPField], _ f: HTTPField) -> Bool {
    for c in fields where c.kind == .connection {
        var found = false
        HTTPHeadScanner.forEachListElement(p, Int(c.valueStart), Int(c.valueEnd)) { s, e in
            if !found && HTTPHeadScanner.equalRanges(p, s, e, Int(f.nameStart), Int(f.nameEnd)) { found = true }
        }
        if found { return true }
    }
    return false
}

// The admin HTTP endpoint's transport (DESIGN.md section 9): one request per connection, with a
// Content-Length body of at most 64 KiB, on the control loop; `AdminAPI` decides the answer.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging

final class AdminServer {
    private let base: OpaquePointer
    private let logger: Logger
    private var listener: OpaquePointer?
    private var connections: [ObjectIdentifier: AdminConnection] = [:]
    /// Admin connections open at once; more wait in the backlog (each has a 10 s deadline).
    static let maxConnections = 32
    let api: AdminAPI

    init(base: OpaquePointer, logger: Logger, api: AdminAPI) {
        self.base = base
        self.logger = logger
        self.api = api
    }

    deinit { if let l = listener { evconnlistener_free(l) } }

    /// Binds `address`. A non-loopback address needs a token file (writes will need the token).
    func start(_ config: AdminConfig) throws(SystemCallError) {
        let loopback = config.listen.host.hasPrefix("127.") || config.listen.host == "::1"
        guard loopback || config.tokenFile != nil else {
            throw SystemCallError(call: "admin.listen \(config.listen): a non-loopback address needs admin.token_file", errno: EACCES)
        }
        guard let sa = SockAddr(config.listen) else { throw SystemCallError(call: "bind \(config.listen)", errno: EINVAL) }
        let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC)
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let l = sa.withSockaddr { p, len in evconnlistener_new_bind(base, AdminServer.onAccept, ctx, flags, 64, p, Int32(len)) }
        guard let l else { throw SystemCallError(call: "bind admin \(config.listen)", errno: errno) }
        listener = l
        api.loopbackOnly = loopback
        logger.info("admin endpoint listening", metadata: ["listen": "\(config.listen)"])
    }

    private static let onAccept: evconnlistener_cb = { _, fd, _, _, ctx in
        let server = Unmanaged<AdminServer>.fromOpaque(ctx!).takeUnretainedValue()
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let c = AdminConnection(fd: fd, server: server)
        server.connections[ObjectIdentifier(c)] = c
        c.start()
        // Its own small cap (A7): at the cap the listener stops accepting, so further clients wait
        // in the kernel's backlog until a connection ends (each has 10 s in all).
        if server.connections.count >= AdminServer.maxConnections, let l = server.listener {
            evconnlistener_disable(l)
        }
    }

    fileprivate func closed(_ c: AdminConnection) {
        connections[ObjectIdentifier(c)] = nil
        if connections.count < AdminServer.maxConnections, let l = listener { evconnlistener_enable(l) }
    }

    fileprivate var eventBase: OpaquePointer { base }

    fileprivate func respond(_ request: AdminRequest) -> AdminReply {
        let reply = api.handle(request)
        if request.method != "GET" && request.method != "HEAD" {
            logger.info(
                "admin request",
                metadata: ["method": "\(request.method)", "target": "\(request.target)", "status": "\(reply.status)"])
        }
        return reply
    }
}

private final class AdminConnection: EndpointDelegate {
    private let endpoint: Endpoint
    private unowned let server: AdminServer
    private var timer: OpaquePointer?
    private var answered = false

    init(fd: Int32, server: AdminServer) {
        self.server = server
        endpoint = Endpoint(fd: fd, base: server.eventBase)
    }

    deinit { if let t = timer { event_free(t) } }

    func start() {
        endpoint.delegate = self
        endpoint.setReading(true)
        timer = event_new(server.eventBase, -1, 0, AdminConnection.onTimeout, Unmanaged.passUnretained(self).toOpaque())
        var tv = Duration.seconds(10).timeval
        if let t = timer { event_add(t, &tv) }
    }

    private static let onTimeout: event_callback_fn = { _, _, ctx in
        Unmanaged<AdminConnection>.fromOpaque(ctx!).takeUnretainedValue().finish()
    }

    func endpointDidConnect(_ endpoint: Endpoint) {}

    func endpointDidRead(_ endpoint: Endpoint) {
        guard !answered else { return }
        let n = min(endpoint.inputLength, 65_536)
        guard n > 0, let p = evbuffer_pullup(endpoint.input, n) else {
            if endpoint.isEOF { finish() }
            return
        }
        switch HTTPRequestParser.parse(UnsafeRawBufferPointer(start: p, count: n), limits: HTTPLimits()) {
        case .incomplete:
            if endpoint.isEOF || n >= 65_536 { finish() }
        case .failed(let error) where error == .methodNotAllowed || error == .notImplemented("unknown method"):
            // A method the HTTP parser refuses (unknown, or CONNECT): for the admin API that is a
            // method the route does not take (404, or 405 with Allow), decided from the request line.
            let line = UnsafeRawBufferPointer(start: p, count: min(n, 8192)).prefix { $0 != 0x0A && $0 != 0x0D }
            let words = line.split(separator: 0x20, omittingEmptySubsequences: false)
            guard words.count == 3 else {
                send(.error(400, "bad request line"), head: false)
                return
            }
            let request = AdminRequest(
                method: String(decoding: words[0], as: UTF8.self), target: String(decoding: words[1], as: UTF8.self),
                authorization: nil, contentType: nil, body: [])
            send(server.respond(request), head: false)
        case .failed(let error):
            send(.error(error.status, error.reasonPhrase), head: false)
        case .complete(let head):
            var length = 0
            switch head.framing {
            case .none: break
            case .contentLength(let declared):
                guard declared <= UInt64(AdminAPI.maxBody) else {
                    send(.error(413, "the body is over \(AdminAPI.maxBody) bytes"), head: false)
                    return
                }
                length = Int(declared)
            case .chunked, .untilClose:
                send(.error(411, "send the body with Content-Length"), head: false)
                return
            }
            let total = head.headLength + length
            guard endpoint.inputLength >= total else {
                if endpoint.isEOF { finish() }
                return
            }
            var body = [UInt8](repeating: 0, count: length)
            if length > 0, let all = evbuffer_pullup(endpoint.input, total) {
                body.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: all + head.headLength, count: length)) }
            }
            let request = AdminRequest(
                method: head.method, target: head.target, authorization: head.firstValue(forName: "authorization"),
                contentType: head.firstValue(forName: "content-type"), body: body,
                hostField: head.firstValue(forName: "host"), origin: head.firstValue(forName: "origin"))
            send(server.respond(request), head: head.method == "HEAD")
        }
    }

    private func send(_ reply: AdminReply, head: Bool) {
        answered = true
        endpoint.setReading(false)
        let reasons = [
            200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 411: "Length Required", 413: "Content Too Large",
            414: "URI Too Long", 415: "Unsupported Media Type", 417: "Expectation Failed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
            505: "HTTP Version Not Supported",
        ]
        let status = reply.status
        var text = "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: \(reply.contentType)\r\n"
        text += "Content-Length: \(reply.body.utf8.count)\r\n"
        for (name, value) in reply.headers { text += "\(name): \(value)\r\n" }
        text += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        if !head { text += reply.body }
        endpoint.append(Array(text.utf8))
        if endpoint.flush() != nil || endpoint.outputLength == 0 { finish() }
    }

    func endpointDidDrain(_ endpoint: Endpoint) { if answered && endpoint.outputLength == 0 { finish() } }

    func endpointDidFail(_ endpoint: Endpoint, errno: Int32) { finish() }

    private func finish() {
        if let t = timer { event_del(t) }
        endpoint.close()
        server.closed(self)
    }
}

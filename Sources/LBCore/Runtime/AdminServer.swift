// The admin HTTP endpoint (DESIGN.md section 9), read-only so far: `GET /healthz`, `GET /metrics`
// (Prometheus text) and `GET /v1/pools` (JSON). One request per connection, on the control loop;
// the views come from the health monitor and discovery, which live there too. Writes (weights,
// drain, shares, promote) belong to the operations issue and answer 405 until then.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging

final class AdminServer {
    /// Renders a body for a path; nil = 404.
    struct Route {
        let contentType: String
        let body: () -> String
    }

    private let base: OpaquePointer
    private let logger: Logger
    private var listener: OpaquePointer?
    private var connections: [ObjectIdentifier: AdminConnection] = [:]
    let routes: [String: Route]

    init(base: OpaquePointer, logger: Logger, routes: [String: Route]) {
        self.base = base
        self.logger = logger
        self.routes = routes
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
        logger.info("admin endpoint listening", metadata: ["listen": "\(config.listen)"])
    }

    private static let onAccept: evconnlistener_cb = { _, fd, _, _, ctx in
        let server = Unmanaged<AdminServer>.fromOpaque(ctx!).takeUnretainedValue()
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let c = AdminConnection(fd: fd, server: server)
        server.connections[ObjectIdentifier(c)] = c
        c.start()
    }

    fileprivate func closed(_ c: AdminConnection) { connections[ObjectIdentifier(c)] = nil }

    fileprivate var eventBase: OpaquePointer { base }

    /// Status, content type and body for one request.
    fileprivate func respond(method: String, target: String) -> (Int, String, String) {
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        guard let route = routes[path] else { return (404, "application/json", "{\"error\": \"no such path\"}\n") }
        guard method == "GET" || method == "HEAD" else {
            return (405, "application/json", "{\"error\": \"only GET here; writes are not available yet\"}\n")
        }
        return (200, route.contentType, route.body())
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
        case .failed(let error):
            send(error.status, "application/json", "{\"error\": \"bad request\"}\n", head: false)
        case .complete(let head):
            let (status, type, body) = server.respond(method: head.method, target: head.target)
            send(status, type, body, head: head.method == "HEAD")
        }
    }

    private func send(_ status: Int, _ type: String, _ body: String, head: Bool) {
        answered = true
        endpoint.setReading(false)
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"][status] ?? "Error"
        var text = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n"
        if status == 405 { text += "Allow: GET, HEAD\r\n" }
        text += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        if !head { text += body }
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

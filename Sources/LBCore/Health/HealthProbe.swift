// One active health check of one backend, on the control loop: a TCP connect, or an HTTP/1.1
// `GET path` whose response status must equal the expected one. Shell code: the verdict goes to the
// `ActiveHealth` machine through `completion`, exactly once; the probe then closes its connection.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent

final class HealthProbe: EndpointDelegate {
    private let base: OpaquePointer
    private let backend: Backend
    private let check: HealthConfig.Check
    private var endpoint: Endpoint?
    private var timer: OpaquePointer?
    private var completion: ((ActiveHealth.Input) -> Void)?

    /// TLS for groups whose backends speak it: HTTP checks go over TLS and fail when the
    /// certificate does not verify (a TCP check stays a TCP connect).
    private let tls: BackendTLS?

    init(base: OpaquePointer, backend: Backend, check: HealthConfig.Check, tls: BackendTLS? = nil,
         completion: @escaping (ActiveHealth.Input) -> Void) {
        self.base = base
        self.tls = tls
        self.backend = backend
        self.check = check
        self.completion = completion
    }

    deinit {
        if let t = timer { event_free(t) }
        endpoint?.close()
    }

    /// Starts the probe; the verdict comes within `timeout`.
    func start(timeout: Duration) {
        timer = event_new(base, -1, 0, HealthProbe.onTimeout, Unmanaged.passUnretained(self).toOpaque())
        var tv = timeout.timeval
        if let t = timer { event_add(t, &tv) }
        do {
            switch try startConnect(to: backend.sockaddr) {
            case .connected(let fd):
                endpoint = Endpoint(fd: fd, base: base)
                startTLS()
                endpoint?.delegate = self
                connected()
            case .inProgress(let fd):
                endpoint = Endpoint(fd: fd, base: base, connecting: true)
                startTLS()
                endpoint?.delegate = self
            }
        } catch {
            finish(.probeFailed)
        }
    }

    private static let onTimeout: event_callback_fn = { _, _, ctx in
        Unmanaged<HealthProbe>.fromOpaque(ctx!).takeUnretainedValue().finish(.probeTimedOut)
    }

    private func startTLS() {
        if let tls, case .http = check, let ep = endpoint { _ = ep.startClientTLS(tls, host: backend.address.host) }
    }

    private func connected() {
        guard let ep = endpoint else { return }
        switch check {
        case .tcp:
            finish(.probeSucceeded)
        case .http(let path, _):
            let host = backend.address.description
            ep.append(Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: lbd-health\r\nConnection: close\r\n\r\n".utf8))
            if ep.flush() != nil {
                finish(.probeFailed)
                return
            }
            ep.setReading(true)
        }
    }

    func endpointDidConnect(_ endpoint: Endpoint) { connected() }

    func endpointDidRead(_ endpoint: Endpoint) {
        guard case .http(_, let expect) = check else { return }
        let n = min(endpoint.inputLength, 65_536)
        guard n > 0, let p = evbuffer_pullup(endpoint.input, n) else {
            if endpoint.isEOF { finish(.probeFailed) }
            return
        }
        switch HTTPResponseParser.parse(UnsafeRawBufferPointer(start: p, count: n), requestWasHEAD: false, maxHeaderBytes: 65_536) {
        case .incomplete:
            if endpoint.isEOF || n >= 65_536 { finish(.probeFailed) }
        case .failed:
            finish(.probeFailed)
        case .complete(let head):
            if head.isInterim {
                evbuffer_drain(endpoint.input, head.headLength)
                endpointDidRead(endpoint)
            } else {
                finish(head.status == expect ? .probeSucceeded : .probeFailed)
            }
        }
    }

    func endpointDidDrain(_ endpoint: Endpoint) {}

    func endpointDidFail(_ endpoint: Endpoint, errno: Int32) { finish(.probeFailed) }

    /// Delivers the verdict once and releases the connection and the timer.
    private func finish(_ input: ActiveHealth.Input) {
        guard let done = completion else { return }
        completion = nil
        if let t = timer { event_del(t) }
        endpoint?.close()
        endpoint = nil
        done(input)
    }
}

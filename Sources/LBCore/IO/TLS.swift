// TLS termination with OpenSSL 3 (notes/libevent-swift.md section 7).
//
// A listener's certificates become one `TLSContextSet`: an SSL_CTX per certificate, built on the
// control thread at start and on reload, never changed afterwards, and shared read-only by the
// workers (an SSL_CTX is safe to create SSL objects from on any thread). The first context takes
// every handshake; the SNI callback moves it to the certificate that matches the name the client
// asked for, exact names before wildcards (X509_check_host, RFC 6125 rules), else the first.
// Session tickets are encrypted with the set's ticket keys (TicketKeys.swift): a reload, and the
// rotation timer every tls.ticket_key_lifetime (Server), build new contexts with a new key, and
// the key they replace still opens tickets for one more lifetime.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import COpenSSL

/// A problem with a certificate or key, by config path.
struct TLSProblem: Error, Sendable, CustomStringConvertible {
    var path: String
    var message: String
    var description: String { "\(path): \(message)" }
}

final class TLSContextSet: @unchecked Sendable {
    // @unchecked: `contexts` is written once in init and only read afterwards; OpenSSL's SSL_CTX
    // is thread-safe for SSL_new and the read-only lookups done in the SNI callback.
    let contexts: [OpaquePointer]
    /// Subject names, for logs and `/v1/tls`.
    let subjects: [String]
    /// Session-ticket keys: new ones, and `previousTicketKey` (the set this one replaces) still
    /// decrypting.
    let ticketKeys: TicketKeyRing

    /// Builds and checks every certificate; throws every problem found, by path.
    init(_ config: ListenerTLSConfig, path: String, previousTicketKey: TicketKey? = nil) throws(TLSConfigError) {
        var contexts: [OpaquePointer] = []
        var subjects: [String] = []
        var problems: [TLSProblem] = []
        for (i, c) in config.certificates.enumerated() {
            let at = "\(path).certificates[\(i)]"
            guard let ctx = SSL_CTX_new(TLS_server_method()) else {
                problems.append(TLSProblem(path: at, message: "SSL_CTX_new failed: \(tlsErrorText())"))
                continue
            }
            _ = lbd_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
            var options = LBD_SSL_OP_NO_RENEGOTIATION | LBD_SSL_OP_NO_COMPRESSION
            options |= LBD_SSL_OP_CIPHER_SERVER_PREFERENCE | LBD_SSL_OP_PRIORITIZE_CHACHA
            if config.sessionTickets == 0 { options |= LBD_SSL_OP_NO_TICKET }
            _ = SSL_CTX_set_options(ctx, options)
            _ = SSL_CTX_set_num_tickets(ctx, config.sessionTickets)
            // The same lists go to every context, so a bad one is reported once.
            ERR_clear_error()
            if SSL_CTX_set_ciphersuites(ctx, config.ciphersuites) != 1, i == 0 {
                problems.append(TLSProblem(path: "\(path).ciphersuites", message: "OpenSSL accepts no TLS 1.3 suite in '\(config.ciphersuites)': \(tlsErrorText())"))
            }
            if SSL_CTX_set_cipher_list(ctx, config.ciphers) != 1, i == 0 {
                problems.append(TLSProblem(path: "\(path).ciphers", message: "OpenSSL accepts no TLS 1.2 cipher in '\(config.ciphers)': \(tlsErrorText())"))
            }
            // The chain sent is the one in the certificate file. Without NO_AUTO_CHAIN OpenSSL
            // builds a chain for every handshake from the context's store, which is empty here,
            // so that work only costs time.
            _ = lbd_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN))
            SSL_CTX_set_alpn_select_cb(ctx, alpnSelect, nil)
            // Read whole socket buffers rather than a record header and then its body (two recv
            // calls per record); Endpoint drains what OpenSSL holds (SSL_has_pending).
            _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nil)
            let sid = Array("lbd".utf8)
            _ = SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
            ERR_clear_error()
            var ok = true
            if SSL_CTX_use_certificate_chain_file(ctx, c.cert) != 1 {
                problems.append(TLSProblem(path: "\(at).cert", message: "cannot use \(c.cert): \(tlsErrorText())"))
                ok = false
            }
            if SSL_CTX_use_PrivateKey_file(ctx, c.key, SSL_FILETYPE_PEM) != 1 {
                let text = tlsErrorText()
                let message = ok && text.contains("key values mismatch") ? "\(c.key) does not match \(c.cert)" : "cannot use \(c.key): \(text)"
                problems.append(TLSProblem(path: "\(at).key", message: message))
                ok = false
            } else if ok && SSL_CTX_check_private_key(ctx) != 1 {
                problems.append(TLSProblem(path: "\(at).key", message: "\(c.key) does not match \(c.cert)"))
                ok = false
            }
            guard ok else {
                SSL_CTX_free(ctx)
                continue
            }
            contexts.append(ctx)
            subjects.append(subjectName(ctx))
        }
        let key = TicketKey.random()
        if key == nil { problems.append(TLSProblem(path: path, message: "no random bytes for session-ticket keys: \(tlsErrorText())")) }
        guard problems.isEmpty, !contexts.isEmpty, let key else {
            for ctx in contexts { SSL_CTX_free(ctx) }
            throw TLSConfigError(problems: problems.isEmpty ? [TLSProblem(path: path, message: "no certificate")] : problems)
        }
        self.contexts = contexts
        self.subjects = subjects
        ticketKeys = TicketKeyRing(current: key, previous: previousTicketKey)
        for ctx in contexts { ticketKeys.install(on: ctx) }
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = lbd_SSL_CTX_set_tlsext_servername_callback(contexts[0], serverNameCallback)
        _ = lbd_SSL_CTX_set_tlsext_servername_arg(contexts[0], me)
    }

    deinit { for ctx in contexts { SSL_CTX_free(ctx) } }

    /// Every problem building `config` would hit, as config problems.
    static func problems(_ config: ListenerTLSConfig, path: String) -> [ConfigProblem] {
        do {
            _ = try TLSContextSet(config, path: path)
            return []
        } catch {
            return error.problems.map { ConfigProblem(path: $0.path, message: $0.message) }
        }
    }

    /// A server-side SSL for an accepted socket: it reads the socket, and writes its records into
    /// `ciphertext`, which the Endpoint sends (see `EvbufferBIO`).
    func newSSL(fd: Int32, ciphertext: OpaquePointer) -> OpaquePointer? {
        guard let ssl = SSL_new(contexts[0]) else { return nil }
        guard let rbio = BIO_new_socket(fd, BIO_NOCLOSE) else {
            SSL_free(ssl)
            return nil
        }
        guard let wbio = EvbufferBIO.make(ciphertext) else {
            BIO_free(rbio)
            SSL_free(ssl)
            return nil
        }
        SSL_set_bio(ssl, rbio, wbio)
        SSL_set_accept_state(ssl)
        return ssl
    }

    /// The context whose certificate matches `name`: exact names first, then wildcards; nil if none.
    func context(forServerName name: String) -> OpaquePointer? {
        for flags in [UInt32(X509_CHECK_FLAG_NO_WILDCARDS), 0] {
            for ctx in contexts {
                guard let cert = SSL_CTX_get0_certificate(ctx) else { continue }
                if X509_check_host(cert, name, name.utf8.count, flags, nil) == 1 { return ctx }
            }
        }
        return nil
    }
}

/// A write-only BIO that appends OpenSSL's records to an evbuffer, so that what several TLS calls
/// produce leaves in one sendmsg (the handshake flight; after it the session tickets, the response
/// and close_notify together), and the Endpoint decides when to send. It never blocks: the
/// Endpoint encrypts only while little ciphertext is waiting.
enum EvbufferBIO {
    private final class Method: @unchecked Sendable {
        // @unchecked: a BIO_METHOD is made once and only read afterwards.
        let method: OpaquePointer?
        init() {
            method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lbd evbuffer")
            guard let method else { return }
            _ = BIO_meth_set_write(method) { bio, data, length in
                guard let bio, let data, length > 0, let buffer = BIO_get_data(bio) else { return length == 0 ? 0 : -1 }
                return evbuffer_add(OpaquePointer(buffer), data, Int(length)) == 0 ? length : -1
            }
            // BIO_flush must succeed (OpenSSL flushes after each flight); nothing else applies.
            _ = BIO_meth_set_ctrl(method) { _, cmd, _, _ in cmd == BIO_CTRL_FLUSH ? 1 : 0 }
        }
    }
    private static let shared = Method()

    /// A BIO writing into `buffer`, which must outlive it.
    static func make(_ buffer: OpaquePointer) -> OpaquePointer? {
        guard let method = shared.method, let bio = BIO_new(method) else { return nil }
        BIO_set_data(bio, UnsafeMutableRawPointer(buffer))
        BIO_set_init(bio, 1)
        return bio
    }
}

struct TLSConfigError: Error, Sendable {
    var problems: [TLSProblem]
}

/// A TLS listener's current certificates (replaced whole by a reload) and its counters.
final class TLSSlot: Sendable {
    let current: Locked<TLSContextSet>
    let stats = TLSStats()
    let reloads = Counter()
    let reloadFailures = Counter()
    let ticketKeyRotations = Counter()
    init(_ set: TLSContextSet) { current = Locked(set) }
    var contexts: TLSContextSet { current.withLock { $0 } }
}

/// Handshakes and failures per listener, counted by workers, read by /metrics.
final class TLSStats: Sendable {
    static let reasons = ["plain_http", "protocol_version", "no_shared_cipher", "bad_record", "eof", "timeout", "other"]
    let handshakes = Counter()
    private let failures: [Counter]

    init() { failures = Self.reasons.map { _ in Counter() } }

    func failed(_ reason: String) {
        let i = Self.reasons.firstIndex(of: reason) ?? Self.reasons.count - 1
        failures[i].add(1)
    }

    func failureCounts() -> [(String, Int)] { zip(Self.reasons, failures.map(\.current)).map { ($0, $1) } }
}

/// The reason of the last OpenSSL error on this thread, as one of `TLSStats.reasons`.
func tlsFailureReason() -> String {
    let code = ERR_peek_last_error()
    guard code != 0 else { return "eof" }
    switch ERR_GET_REASON(code) {
    case SSL_R_HTTP_REQUEST, SSL_R_HTTPS_PROXY_REQUEST: return "plain_http"
    case SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_WRONG_VERSION_NUMBER, SSL_R_VERSION_TOO_LOW: return "protocol_version"
    case SSL_R_NO_SHARED_CIPHER: return "no_shared_cipher"
    case SSL_R_RECORD_LENGTH_MISMATCH, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC, SSL_R_PACKET_LENGTH_TOO_LONG: return "bad_record"
    default: return "other"
    }
}

/// The OpenSSL error queue as text (and cleared).
func tlsErrorText() -> String {
    var parts: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        parts.append(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return parts.isEmpty ? "unknown error" : parts.joined(separator: "; ")
}

private func subjectName(_ ctx: OpaquePointer) -> String {
    guard let cert = SSL_CTX_get0_certificate(ctx), let name = X509_get_subject_name(cert),
        let line = X509_NAME_oneline(name, nil, 0)
    else { return "?" }
    defer { CRYPTO_free(line, "", 0) }
    return String(cString: line)
}

/// SNI: move the handshake to the certificate for the name asked for (or keep the default).
private let serverNameCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { ssl, _, arg in
    guard let ssl, let arg, let raw = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return SSL_TLSEXT_ERR_OK }
    let set = Unmanaged<TLSContextSet>.fromOpaque(arg).takeUnretainedValue()
    // With one certificate every name gets it: no name checks (two X509_check_host per handshake).
    guard set.contexts.count > 1 else { return SSL_TLSEXT_ERR_OK }
    if let ctx = set.context(forServerName: String(cString: raw)), ctx != set.contexts[0] {
        _ = SSL_set_SSL_CTX(ssl, ctx)
    }
    return SSL_TLSEXT_ERR_OK
}

/// ALPN: http/1.1 if the client offers it; a client offering only other protocols gets none
/// (the handshake goes on without ALPN, as RFC 7301 allows a server to).
private let alpnSelect: @convention(c) (
    OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?, UnsafePointer<UInt8>?, UInt32,
    UnsafeMutableRawPointer?
) -> Int32 = { _, out, outlen, input, inlen, _ in
    guard let out, let outlen, let input else { return SSL_TLSEXT_ERR_NOACK }
    var i = 0
    while i < Int(inlen) {
        let n = Int(input[i])
        if n == 8 && i + 1 + n <= Int(inlen) && (0..<8).allSatisfy({ input[i + 1 + $0] == Array("http/1.1".utf8)[$0] }) {
            out.pointee = input + i + 1
            outlen.pointee = 8
            return SSL_TLSEXT_ERR_OK
        }
        i += 1 + n
    }
    return SSL_TLSEXT_ERR_NOACK
}

/// TLS to one group's backends: a client SSL_CTX built once (start, reload) and shared read-only
/// by the workers and the health checks.
final class BackendTLS: @unchecked Sendable {
    // @unchecked: `ctx` is configured in init and only used to create SSL objects afterwards.
    let ctx: OpaquePointer
    let config: BackendTLSConfig

    init(_ config: BackendTLSConfig, path: String) throws(TLSConfigError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSConfigError(problems: [TLSProblem(path: path, message: "SSL_CTX_new failed: \(tlsErrorText())")])
        }
        _ = lbd_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        _ = SSL_CTX_set_options(ctx, LBD_SSL_OP_NO_RENEGOTIATION | LBD_SSL_OP_NO_COMPRESSION)
        _ = lbd_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        ERR_clear_error()
        var problems: [TLSProblem] = []
        if config.verify {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if let ca = config.caFile {
                if SSL_CTX_load_verify_locations(ctx, ca, nil) != 1 {
                    problems.append(TLSProblem(path: "\(path).ca_file", message: "cannot use \(ca): \(tlsErrorText())"))
                }
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                problems.append(TLSProblem(path: path, message: "no ca_file and no system CA store: \(tlsErrorText())"))
            }
        }
        if let cert = config.cert, let key = config.key {
            if SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 {
                problems.append(TLSProblem(path: "\(path).cert", message: "cannot use \(cert): \(tlsErrorText())"))
            } else if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1 {
                problems.append(TLSProblem(path: "\(path).key", message: "cannot use \(key) with \(cert): \(tlsErrorText())"))
            }
        }
        guard problems.isEmpty else {
            SSL_CTX_free(ctx)
            throw TLSConfigError(problems: problems)
        }
        self.ctx = ctx
        self.config = config
    }

    deinit { SSL_CTX_free(ctx) }

    static func problems(_ config: BackendTLSConfig, path: String) -> [ConfigProblem] {
        do {
            _ = try BackendTLS(config, path: path)
            return []
        } catch {
            return error.problems.map { ConfigProblem(path: $0.path, message: $0.message) }
        }
    }

    /// A client SSL on a connected socket to `host` (numeric): SNI and the name check use
    /// `server_name`, or without one the address is checked as an IP address (and no SNI is sent).
    func newSSL(fd: Int32, host: String) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        if let name = config.serverName {
            _ = lbd_SSL_set_tlsext_host_name(ssl, name)
            if config.verify { _ = SSL_set1_host(ssl, name) }
        } else if config.verify, let param = SSL_get0_param(ssl) {
            _ = X509_VERIFY_PARAM_set1_ip_asc(param, host)
        }
        return ssl
    }
}

/// Backend TLS contexts by "pool/group", replaced whole on reload. Any thread.
final class BackendTLSRegistry: Sendable {
    private let byGroup = Locked<[String: BackendTLS]>([:])
    /// Failed backend handshakes by reason: "verify" (certificate or name), "other".
    let verifyFailures = Counter()
    let otherFailures = Counter()

    func set(_ map: [String: BackendTLS]) { byGroup.withLock { $0 = map } }
    func lookup(pool: String, group: String) -> BackendTLS? { byGroup.withLock { $0["\(pool)/\(group)"] } }

    /// Builds every group's context; throws every problem.
    static func build(_ config: LBConfig) throws(TLSConfigError) -> [String: BackendTLS] {
        var map: [String: BackendTLS] = [:]
        var problems: [TLSProblem] = []
        for pool in config.pools {
            for group in pool.groups {
                guard let t = group.tls else { continue }
                do {
                    map["\(pool.name)/\(group.name)"] = try BackendTLS(t, path: "pools.\(pool.name).groups.\(group.name).tls")
                } catch {
                    problems += error.problems
                }
            }
        }
        guard problems.isEmpty else { throw TLSConfigError(problems: problems) }
        return map
    }
}

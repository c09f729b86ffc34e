// Session-ticket keys for a TLS listener: the current key encrypts new tickets, and the key it
// replaced still decrypts for one more lifetime, so a rotation (every tls.ticket_key_lifetime,
// and on a reload) does not send every client back to a full handshake at the same moment. A
// ticket opened with the previous key is renewed (OpenSSL sends a new one). The format is
// OpenSSL's own (AES-256-CBC and HMAC-SHA256, a 16-byte key name in front), so only the keys are
// ours. Keys live in memory only.

#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// One ticket key: a random name, an AES-256 key and an HMAC-SHA256 key.
struct TicketKey: Sendable {
    let name: [UInt8]
    let aesKey: [UInt8]
    let hmacKey: [UInt8]

    /// A new random key; nil if the random generator fails.
    static func random() -> TicketKey? {
        var name = [UInt8](repeating: 0, count: 16)
        var aes = [UInt8](repeating: 0, count: 32)
        var hmac = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&name, 16) == 1, RAND_bytes(&aes, 32) == 1, RAND_bytes(&hmac, 32) == 1 else { return nil }
        return TicketKey(name: name, aesKey: aes, hmacKey: hmac)
    }

    /// Sets up OpenSSL's cipher and MAC contexts for this key.
    func prepare(cipher: OpaquePointer, mac: OpaquePointer, iv: UnsafeMutablePointer<UInt8>, encrypt: Bool) -> Bool {
        let cipherOK = aesKey.withUnsafeBufferPointer { key in
            encrypt
                ? EVP_EncryptInit_ex(cipher, ticketCipher, nil, key.baseAddress, iv) == 1
                : EVP_DecryptInit_ex(cipher, ticketCipher, nil, key.baseAddress, iv) == 1
        }
        guard cipherOK else { return false }
        return hmacKey.withUnsafeBufferPointer { key in
            var params = [
                OSSL_PARAM_construct_octet_string(CStrings.key, UnsafeMutableRawPointer(mutating: key.baseAddress), key.count),
                OSSL_PARAM_construct_utf8_string(CStrings.digest, CStrings.sha256, 0),
                OSSL_PARAM_construct_end(),
            ]
            return EVP_MAC_CTX_set_params(mac, &params) == 1
        }
    }
}

/// AES-256-CBC, fetched once: `EVP_aes_256_cbc()` is fetched again by every init that uses it
/// (two per resumed handshake). Never freed; the fetch is cached by OpenSSL anyway.
nonisolated(unsafe) private let ticketCipher = EVP_CIPHER_fetch(nil, "AES-256-CBC", nil)

/// C strings that outlive the OSSL_PARAMs pointing at them (a Swift literal passed as a C string
/// lives only for the call that makes the param). Never written.
private enum CStrings {
    nonisolated(unsafe) static let key: UnsafeMutablePointer<CChar> = strdup("key")!
    nonisolated(unsafe) static let digest: UnsafeMutablePointer<CChar> = strdup("digest")!
    nonisolated(unsafe) static let sha256: UnsafeMutablePointer<CChar> = strdup("SHA256")!
}

/// The keys of one set of TLS contexts; immutable, read by every worker's handshakes.
final class TicketKeyRing: Sendable {
    let current: TicketKey
    let previous: TicketKey?

    init(current: TicketKey, previous: TicketKey?) {
        self.current = current
        self.previous = previous
    }

    /// Hands every ticket of `ctx` to this ring. The ring must outlive the context and every SSL
    /// made from it (TLSContextSet owns the ring; each Endpoint holds its set).
    func install(on ctx: OpaquePointer) {
        _ = SSL_CTX_set_ex_data(ctx, 0, Unmanaged.passUnretained(self).toOpaque())
        _ = SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketKeyCallback)
    }
}

/// OpenSSL's ticket callback: 1 with the current key, 2 with the previous one or under TLS 1.3
/// (decrypt and send a renewed ticket), 0 for an unknown key name (a full handshake), -1 on an
/// error.
private let ticketKeyCallback: @convention(c) (
    OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, OpaquePointer?, OpaquePointer?, Int32
) -> Int32 = { ssl, name, iv, cipher, mac, encrypt in
    guard let ssl, let name, let iv, let cipher, let mac, let ctx = SSL_get_SSL_CTX(ssl),
        let raw = SSL_CTX_get_ex_data(ctx, 0)
    else { return -1 }
    let ring = Unmanaged<TicketKeyRing>.fromOpaque(raw).takeUnretainedValue()
    if encrypt == 1 {
        let key = ring.current
        guard RAND_bytes(iv, 16) == 1 else { return -1 }
        key.name.withUnsafeBufferPointer { name.update(from: $0.baseAddress!, count: 16) }
        return key.prepare(cipher: cipher, mac: mac, iv: iv, encrypt: true) ? 1 : -1
    }
    let given = Array(UnsafeBufferPointer(start: name, count: 16))
    if given == ring.current.name {
        // TLS 1.3 clients use a ticket once (curl, wrk, browsers), so a resumed connection gets
        // a new one, as OpenSSL does with its own keys; without it every other connection of
        // such a client is a full handshake. A TLS 1.2 ticket stays valid and is not reissued.
        let renew = SSL_version(ssl) >= TLS1_3_VERSION
        return ring.current.prepare(cipher: cipher, mac: mac, iv: iv, encrypt: false) ? (renew ? 2 : 1) : -1
    }
    if let previous = ring.previous, given == previous.name {
        return previous.prepare(cipher: cipher, mac: mac, iv: iv, encrypt: false) ? 2 : -1
    }
    return 0
}

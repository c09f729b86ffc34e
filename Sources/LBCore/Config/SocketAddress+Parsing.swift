// Text form of socket addresses: `127.0.0.1:80`, `[::1]:80`. Hosts are numeric only; names are
// never resolved here (SRV discovery is the resolver's job), so parsing is pure and instant.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parses `IPv4:port` or `[IPv6]:port` into a ``SocketAddress``.
///
/// The host must be numeric and is checked with `inet_pton`; IPv6 hosts are stored in the
/// canonical `inet_ntop` form (`[0:0::1]:80` becomes `[::1]:80`), so equal addresses compare equal.
/// The port is decimal, `1...65535`, or `0...65535` when `allowPortZero` is true.
/// Rejects host names, bare IPv6 without brackets, zone ids (`%eth0`), missing or extra ports,
/// and spaces. Pure; safe from any thread.
public func parseSocketAddress(_ text: String, allowPortZero: Bool = false) -> SocketAddress? {
    let hostText: Substring
    let portText: Substring
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return nil }
        hostText = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        guard rest.hasPrefix(":") else { return nil }
        portText = rest.dropFirst()
    } else {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        hostText = text[..<colon]
        portText = text[text.index(after: colon)...]
    }
    guard let port = parsePort(portText), allowPortZero || port != 0 else { return nil }
    let host: String?
    if text.hasPrefix("[") {
        host = canonicalIPv6(hostText)
    } else {
        host = isIPv4(hostText) ? String(hostText) : nil
    }
    guard let host else { return nil }
    return SocketAddress(host: host, port: port)
}

/// Decimal `0...65535`, one to five ASCII digits.
private func parsePort(_ text: Substring) -> UInt16? {
    guard (1...5).contains(text.count), text.allSatisfy(\.isASCIIDigit) else { return nil }
    return UInt16(text)
}

/// Dotted-quad IPv4 as `inet_pton(AF_INET)` accepts it (four decimal parts, no leading zeros).
private func isIPv4(_ text: Substring) -> Bool {
    // Only these characters can be valid; the check also keeps NUL bytes away from C.
    guard !text.isEmpty, text.allSatisfy({ $0.isASCIIDigit || $0 == "." }) else { return false }
    var address = in_addr()
    return inet_pton(AF_INET, String(text), &address) == 1
}

/// The canonical text of an IPv6 address, or nil if `inet_pton(AF_INET6)` rejects it.
private func canonicalIPv6(_ text: Substring) -> String? {
    let allowed = text.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    guard !text.isEmpty, allowed else { return nil }
    var address = in6_addr()
    guard inet_pton(AF_INET6, String(text), &address) == 1 else { return nil }
    var buffer = [CChar](repeating: 0, count: 64)
    let written = buffer.withUnsafeMutableBufferPointer { out in
        inet_ntop(AF_INET6, &address, out.baseAddress, socklen_t(out.count))
    }
    guard written != nil else { return nil }
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

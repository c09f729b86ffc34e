// The VRRP codec (RFC 5798 / RFC 9568 section 5; v2 = RFC 3768): pure functions over bytes.
// Every read is bounds-checked; nothing is allocated from a declared count. Checked byte for byte
// against keepalived 2.2.7's packets (shared/notes/vrrp-golden-packets.md).
//
// Addresses are IPv4 as `UInt32` in host order, so 10.99.0.11 is 0x0A63000B and comparing two
// addresses as integers is the RFC's "unsigned network-order" comparison.

/// Which checksum form an advert carried (VRRPv3 over IPv4 has two in the wild).
public enum VRRPChecksumForm: String, Sendable, CaseIterable {
    /// IPv4 pseudo-header included: keepalived, FRR, Wireshark (RFC 5798 as they read it).
    case withPseudoHeader = "pseudo_header"
    /// The VRRP message only: RFC 9568, Cisco, Juniper; and always VRRPv2.
    case vrrpOnly = "vrrp_only"
    /// Unicast advert whose pseudo-header used 224.0.0.18 (keepalived before 1.3.6).
    case multicastPseudoHeader = "multicast_pseudo_header"
}

/// Why a received packet was dropped. The raw values name the counters.
public enum VRRPDropReason: String, Sendable, CaseIterable, Error {
    case truncated
    case badIPHeader = "bad_ip_header"
    case notVRRP = "not_vrrp"
    case badTTL = "bad_ttl"
    case badVersion = "bad_version"
    case badType = "bad_type"
    case badLength = "bad_length"
    case badChecksum = "bad_checksum"
    case zeroInterval = "zero_interval"
    case noAddresses = "no_addresses"
    case otherVRID = "other_vrid"
    case notAPeer = "not_a_peer"
    case ownPacket = "own_packet"
}

/// A decoded advertisement and the IP fields the receiver checks.
public struct VRRPAdvert: Sendable, Equatable {
    /// 2 or 3.
    public var version: UInt8
    public var vrid: UInt8
    public var priority: UInt8
    /// v3: Max Adver Int in centiseconds; v2: Adver Int in seconds × 100.
    public var intervalCentiseconds: UInt16
    public var addresses: [UInt32]
    public var source: UInt32
    public var destination: UInt32
    public var ttl: UInt8
    public var checksumForm: VRRPChecksumForm
    /// v2 only: auth type and the 8 bytes of auth data.
    public var authType: UInt8 = 0
}

public enum VRRPCodec {
    public static let multicastGroup: UInt32 = 0xE000_0012  // 224.0.0.18
    public static let ipProtocol: UInt8 = 112

    /// Decodes a whole IPv4 packet (IP header first, as a raw socket delivers it).
    /// `requireTTL255`: false for unicast mode, where a routed path lowers the TTL.
    public static func decode(_ packet: [UInt8], requireTTL255: Bool = true) -> Result<VRRPAdvert, VRRPDropReason> {
        packet.withUnsafeBytes { decode($0, requireTTL255: requireTTL255) }
    }

    public static func decode(_ p: UnsafeRawBufferPointer, requireTTL255: Bool = true) -> Result<VRRPAdvert, VRRPDropReason> {
        guard p.count >= 20 else { return .failure(.truncated) }
        guard p[0] >> 4 == 4 else { return .failure(.badIPHeader) }
        let ihl = Int(p[0] & 0x0F) * 4
        let total = Int(be16(p, 2))
        guard ihl >= 20, total >= ihl, total <= p.count else { return .failure(.badIPHeader) }
        guard p[9] == ipProtocol else { return .failure(.notVRRP) }
        let ttl = p[8]
        if requireTTL255 && ttl != 255 { return .failure(.badTTL) }
        let source = be32(p, 12)
        let destination = be32(p, 16)
        let vrrp = UnsafeRawBufferPointer(rebasing: p[ihl..<total])
        guard vrrp.count >= 8 else { return .failure(.truncated) }
        let version = vrrp[0] >> 4
        guard version == 2 || version == 3 else { return .failure(.badVersion) }
        guard vrrp[0] & 0x0F == 1 else { return .failure(.badType) }
        let count = Int(vrrp[3])
        let expected = 8 + 4 * count + (version == 2 ? 8 : 0)
        guard vrrp.count == expected else { return .failure(.badLength) }
        guard count >= 1 else { return .failure(.noAddresses) }
        var addresses: [UInt32] = []
        addresses.reserveCapacity(count)
        for i in 0..<count { addresses.append(be32(vrrp, 8 + 4 * i)) }
        let form: VRRPChecksumForm
        let interval: UInt16
        if version == 3 {
            interval = be16(vrrp, 4) & 0x0FFF
            guard interval > 0 else { return .failure(.zeroInterval) }
            if checksum(vrrp, pseudo: (source, destination)) == 0 {
                form = .withPseudoHeader
            } else if checksum(vrrp, pseudo: nil) == 0 {
                form = .vrrpOnly
            } else if destination != multicastGroup && checksum(vrrp, pseudo: (source, multicastGroup)) == 0 {
                form = .multicastPseudoHeader
            } else {
                return .failure(.badChecksum)
            }
        } else {
            interval = UInt16(vrrp[5]) * 100
            guard interval > 0 else { return .failure(.zeroInterval) }
            guard checksum(vrrp, pseudo: nil) == 0 else { return .failure(.badChecksum) }
            form = .vrrpOnly
        }
        return .success(
            VRRPAdvert(
                version: version, vrid: vrrp[1], priority: vrrp[2], intervalCentiseconds: interval, addresses: addresses,
                source: source, destination: destination, ttl: ttl, checksumForm: form,
                authType: version == 2 ? vrrp[4] : 0))
    }

    /// A VRRPv3 advert as a whole IPv4 packet for an IP_HDRINCL socket, laid out as keepalived
    /// sends it: TOS 0xc0, TTL 255, DF clear, the given IP ID.
    public static func encodeIPv4(
        vrid: UInt8, priority: UInt8, intervalCentiseconds: UInt16, addresses: [UInt32], source: UInt32,
        destination: UInt32, ipID: UInt16, checksumForm: VRRPChecksumForm = .withPseudoHeader
    ) -> [UInt8] {
        let count = min(addresses.count, 255)
        let vrrpLength = 8 + 4 * count
        var b = [UInt8](repeating: 0, count: 20 + vrrpLength)
        b[0] = 0x45
        b[1] = 0xC0
        put16(&b, 2, UInt16(b.count))
        put16(&b, 4, ipID)
        b[8] = 255
        b[9] = ipProtocol
        put32(&b, 12, source)
        put32(&b, 16, destination)
        b[20] = 0x31
        b[21] = vrid
        b[22] = priority
        b[23] = UInt8(count)
        put16(&b, 24, intervalCentiseconds & 0x0FFF)
        for (i, a) in addresses.prefix(count).enumerated() { put32(&b, 28 + 4 * i, a) }
        let sum: UInt16 = b.withUnsafeBytes { raw in
            let vrrp = UnsafeRawBufferPointer(rebasing: raw[20...])
            switch checksumForm {
            case .withPseudoHeader: return checksum(vrrp, pseudo: (source, destination))
            case .multicastPseudoHeader: return checksum(vrrp, pseudo: (source, multicastGroup))
            case .vrrpOnly: return checksum(vrrp, pseudo: nil)
            }
        }
        put16(&b, 26, sum)
        let ipSum = b.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20]), pseudo: nil) }
        put16(&b, 10, ipSum)
        return b
    }

    /// The Internet checksum of `bytes`, with the IPv4 pseudo-header (src, dst, 0, 112, length)
    /// when `pseudo` is given. Over a message whose checksum field is filled in, 0 means valid.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, pseudo: (UInt32, UInt32)?) -> UInt16 {
        var sum: UInt32 = 0
        if let (src, dst) = pseudo {
            sum &+= (src >> 16) &+ (src & 0xFFFF) &+ (dst >> 16) &+ (dst & 0xFFFF)
            sum &+= UInt32(ipProtocol) &+ UInt32(bytes.count)
        }
        var i = 0
        while i + 1 < bytes.count {
            sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// A gratuitous ARP request as keepalived sends it: broadcast, sender = target = `address`,
    /// target MAC ff:ff:ff:ff:ff:ff.
    public static func gratuitousARP(mac: [UInt8], address: UInt32) -> [UInt8] {
        precondition(mac.count == 6, "a MAC address has 6 bytes")
        var f = [UInt8](repeating: 0xFF, count: 6) + mac + [0x08, 0x06]
        f += [0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01] + mac
        var ip = [UInt8](repeating: 0, count: 4)
        put32(&ip, 0, address)
        f += ip + [UInt8](repeating: 0xFF, count: 6) + ip
        return f
    }

    // MARK: - Byte helpers

    static func be16(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(p[at]) << 8 | UInt16(p[at + 1]) }
    static func be32(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(p[at]) << 24 | UInt32(p[at + 1]) << 16 | UInt32(p[at + 2]) << 8 | UInt32(p[at + 3])
    }
    static func put16(_ b: inout [UInt8], _ at: Int, _ v: UInt16) {
        b[at] = UInt8(v >> 8)
        b[at + 1] = UInt8(v & 0xFF)
    }
    static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for k in 0..<4 { b[at + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(k))) }
    }
}

/// Dotted-quad text ↔ `UInt32` (host order).
public enum IPv4Text {
    public static func parse(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(p), n <= 255 else {
                return nil
            }
            v = v << 8 | n
        }
        return v
    }

    public static func format(_ v: UInt32) -> String { "\(v >> 24).\(v >> 16 & 255).\(v >> 8 & 255).\(v & 255)" }
}

// The Linux side of VRRP: the raw IP protocol 112 socket, VIPs through rtnetlink (hand-built
// messages, no libnl), gratuitous ARP through an AF_PACKET socket, and interface facts.
// Thin: no decisions here. Needs CAP_NET_RAW and CAP_NET_ADMIN.

#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, and errno.
public struct VRRPSystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// What the engine needs to know about its interface.
struct InterfaceInfo {
    var index: Int32
    var mac: [UInt8]
    /// The interface's primary IPv4 address: the first one that is not a VIP.
    var primary: UInt32
}

enum LinuxNet {
    static func interface(_ name: String, excluding vips: Set<UInt32>) throws(VRRPSystemError) -> InterfaceInfo {
        let index = Int32(if_nametoindex(name))
        guard index > 0 else { throw VRRPSystemError(call: "interface \(name)", errno: ENODEV) }
        var mac: [UInt8] = []
        var primary: UInt32?
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { throw VRRPSystemError(call: "getifaddrs", errno: errno) }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let n = ifa.pointee.ifa_name, String(cString: n) == name, let sa = ifa.pointee.ifa_addr else { continue }
            switch Int32(sa.pointee.sa_family) {
            case AF_INET where primary == nil:
                let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                if !vips.contains(a) { primary = a }
            case AF_PACKET:
                // sockaddr_ll: family(2) protocol(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8).
                let raw = UnsafeRawPointer(sa)
                let halen = Int(raw.load(fromByteOffset: 11, as: UInt8.self))
                mac = (0..<min(halen, 8)).map { raw.load(fromByteOffset: 12 + $0, as: UInt8.self) }
            default:
                break
            }
        }
        guard mac.count == 6 else { throw VRRPSystemError(call: "interface \(name): no Ethernet address", errno: EINVAL) }
        guard let primary else { throw VRRPSystemError(call: "interface \(name): no IPv4 address", errno: EADDRNOTAVAIL) }
        return InterfaceInfo(index: index, mac: mac, primary: primary)
    }

    /// The raw socket adverts are sent and received on: bound to the interface, joined to
    /// 224.0.0.18 there, IP_HDRINCL for sending, no multicast loopback.
    static func vrrpSocket(interface: String, index: Int32, primary: UInt32) throws(VRRPSystemError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 112)
        guard fd >= 0 else { throw VRRPSystemError(call: "socket(AF_INET, SOCK_RAW, 112)", errno: errno) }
        func option<T>(_ level: Int32, _ name: Int32, _ value: T, _ what: String) throws(VRRPSystemError) {
            var v = value
            guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<T>.size)) == 0 else {
                let e = errno
                close(fd)
                throw VRRPSystemError(call: "setsockopt \(what)", errno: e)
            }
        }
        var name = Array(interface.utf8CString)
        guard setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, &name, socklen_t(name.count)) == 0 else {
            let e = errno
            close(fd)
            throw VRRPSystemError(call: "SO_BINDTODEVICE \(interface)", errno: e)
        }
        try option(Int32(IPPROTO_IP), IP_HDRINCL, Int32(1), "IP_HDRINCL")
        try option(Int32(IPPROTO_IP), IP_MULTICAST_LOOP, UInt8(0), "IP_MULTICAST_LOOP")
        try option(Int32(IPPROTO_IP), 49 /* IP_MULTICAST_ALL */, Int32(0), "IP_MULTICAST_ALL")
        var mreq = ip_mreqn()
        mreq.imr_multiaddr.s_addr = VRRPCodec.multicastGroup.bigEndian
        mreq.imr_address.s_addr = primary.bigEndian
        mreq.imr_ifindex = index
        try option(Int32(IPPROTO_IP), IP_MULTICAST_IF, mreq, "IP_MULTICAST_IF")
        try option(Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, mreq, "IP_ADD_MEMBERSHIP 224.0.0.18")
        return fd
    }

    static func send(_ fd: Int32, packet: [UInt8], to destination: UInt32) -> Int32? {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = destination.bigEndian
        let n = packet.withUnsafeBytes { p in
            withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return n == packet.count ? nil : (n < 0 ? errno : EMSGSIZE)
    }

    /// An AF_PACKET socket for gratuitous ARP on `index`.
    static func arpSocket() throws(VRRPSystemError) -> Int32 {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(UInt16(0x0806).bigEndian))
        guard fd >= 0 else { throw VRRPSystemError(call: "socket(AF_PACKET)", errno: errno) }
        return fd
    }

    static func sendFrame(_ fd: Int32, _ frame: [UInt8], index: Int32) -> Int32? {
        // sockaddr_ll, built byte by byte (Glibc does not import <linux/if_packet.h>).
        var ll = [UInt8](repeating: 0, count: 20)
        ll[0] = UInt8(AF_PACKET & 0xFF)
        ll[1] = UInt8(AF_PACKET >> 8)
        ll[2] = 0x08
        ll[3] = 0x06
        withUnsafeBytes(of: index.littleEndian) { for i in 0..<4 { ll[4 + i] = $0[i] } }
        ll[11] = 6
        for i in 12..<18 { ll[i] = 0xFF }
        let n = frame.withUnsafeBytes { p in
            ll.withUnsafeBytes { a in
                sendto(fd, p.baseAddress, p.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count))
            }
        }
        return n == frame.count ? nil : (n < 0 ? errno : EMSGSIZE)
    }

    // MARK: - rtnetlink

    static let RTM_NEWADDR: UInt16 = 20
    static let RTM_DELADDR: UInt16 = 21

    /// Adds or deletes an IPv4 address. Adding one that is there, or deleting one that is not,
    /// is not an error.
    static func address(_ add: Bool, _ address: UInt32, prefixLength: UInt8, index: Int32, label: String?) throws(VRRPSystemError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw VRRPSystemError(call: "socket(AF_NETLINK)", errno: errno) }
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let message = addressMessage(add, address, prefixLength: prefixLength, index: index, label: label, sequence: 1)
        // sockaddr_nl: family(2) pad(2) pid(4) groups(4); all zero but the family: the kernel.
        var nl = [UInt8](repeating: 0, count: 12)
        nl[0] = UInt8(AF_NETLINK)
        let sent = message.withUnsafeBytes { p in
            nl.withUnsafeBytes { a in
                sendto(fd, p.baseAddress, p.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count))
            }
        }
        let what = "\(add ? "add" : "delete") \(IPv4Text.format(address))/\(prefixLength)"
        guard sent == message.count else { throw VRRPSystemError(call: "netlink \(what)", errno: errno) }
        var reply = [UInt8](repeating: 0, count: 4096)
        let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 20 else { throw VRRPSystemError(call: "netlink \(what): no answer", errno: n < 0 ? errno : EIO) }
        let type = UInt16(reply[4]) | UInt16(reply[5]) << 8
        guard type == 2 /* NLMSG_ERROR */ else { return }
        let code = Int32(bitPattern: UInt32(reply[16]) | UInt32(reply[17]) << 8 | UInt32(reply[18]) << 16 | UInt32(reply[19]) << 24)
        if code == 0 || (add && code == -EEXIST) || (!add && (code == -EADDRNOTAVAIL || code == -ENOENT || code == -ESRCH)) {
            return
        }
        throw VRRPSystemError(call: "netlink \(what)", errno: -code)
    }

    /// nlmsghdr + ifaddrmsg + IFA_LOCAL + IFA_ADDRESS (+ IFA_LABEL), little-endian host order.
    static func addressMessage(
        _ add: Bool, _ address: UInt32, prefixLength: UInt8, index: Int32, label: String?, sequence: UInt32
    ) -> [UInt8] {
        func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
        func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
            var a = le16(UInt16(4 + payload.count)) + le16(type) + payload
            while a.count % 4 != 0 { a.append(0) }
            return a
        }
        let ip = [UInt8(address >> 24), UInt8(address >> 16 & 255), UInt8(address >> 8 & 255), UInt8(address & 255)]
        var body: [UInt8] = [UInt8(AF_INET), prefixLength, 0, 0] + le32(UInt32(bitPattern: index))
        body += attribute(2 /* IFA_LOCAL */, ip) + attribute(1 /* IFA_ADDRESS */, ip)
        if let label, label.utf8.count < 16 { body += attribute(3 /* IFA_LABEL */, Array(label.utf8) + [0]) }
        let flags: UInt16 = add ? 0x1 | 0x4 | 0x400 /* REQUEST | ACK | CREATE */ : 0x1 | 0x4
        return le32(UInt32(16 + body.count)) + le16(add ? RTM_NEWADDR : RTM_DELADDR) + le16(flags) + le32(sequence) + le32(0)
            + body
    }
}

// VRRP: the VRRPv3 codec (VRRPPacket.swift), the instance state machine (VRRPMachine.swift), the
// Linux adapters for the raw socket, VIPs and gratuitous ARP (VRRPLinux.swift), and the engine
// that runs them on its own thread (VRRPEngine.swift). DESIGN.md section 7; notes/vrrp.md.

/// RFC 5798 §5.1.1: IP protocol number, multicast group and the required TTL/hop limit.
public enum VRRPConstants {
    public static let ipProtocol: Int32 = 112
    public static let ipv4Group = "224.0.0.18"
    public static let ipv6Group = "ff02::12"
    public static let requiredTTL: UInt8 = 255
    public static let version: UInt8 = 3
}

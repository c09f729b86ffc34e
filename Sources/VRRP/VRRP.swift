// VRRP: the VRRPv3 codec, instance state machine, VIP handling and raw-socket shell (DESIGN.md
// section 7). The pair is the subject of its own issue; until it lands this module holds only the
// protocol constants from RFC 5798.

/// RFC 5798 §5.1.1: IP protocol number, multicast group and the required TTL/hop limit.
public enum VRRPConstants {
    public static let ipProtocol: Int32 = 112
    public static let ipv4Group = "224.0.0.18"
    public static let ipv6Group = "ff02::12"
    public static let requiredTTL: UInt8 = 255
    public static let version: UInt8 = 3
}

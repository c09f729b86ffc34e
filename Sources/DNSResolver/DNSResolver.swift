// DNSResolver: the DNS message codec, the SRV query state machine and its libevent shell
// (DESIGN.md section 2). Discovery is the subject of the Consul-discovery issue; until it lands
// this module holds only the protocol constants the codec will be built on.

/// DNS record types lbd reads (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 6891).
public enum DNSRecordType: UInt16, Sendable {
    case a = 1
    case soa = 6
    case txt = 16
    case aaaa = 28
    case srv = 33
    case opt = 41
}

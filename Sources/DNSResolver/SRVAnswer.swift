// What an SRV (or A/AAAA) answer means for discovery (RFC 2782; consul-dns.md §1).

/// One SRV record with the addresses the additional section gave for its target.
public struct SRVTarget: Hashable, Sendable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    public var target: DNSName
    public var addresses: [DNSAddress]
}

public enum SRVAnswer {
    /// SRV records owned by the question's name: target "." (service not available) and port 0
    /// dropped, (target, port) duplicates dropped; addresses only from additional A/AAAA records
    /// named as a target (anything else there is ignored); `unresolved` lists targets without
    /// one; `ttl` is the smallest TTL of the records used.
    public static func extract(from m: DNSMessage, question: DNSQuestion)
        -> (targets: [SRVTarget], unresolved: [DNSName], ttl: UInt32)
    {
        var targets: [SRVTarget] = []
        var seen: Set<[String]> = []
        var ttl = UInt32.max
        for rr in m.answers where rr.name == question.name {
            guard case .srv(let priority, let weight, let port, let target) = rr.data,
                  !target.labels.isEmpty, port != 0,
                  seen.insert(target.labels + [String(port)]).inserted else { continue }
            ttl = min(ttl, rr.ttl)
            targets.append(SRVTarget(priority: priority, weight: weight, port: port, target: target, addresses: []))
        }
        let names = Set(targets.map(\.target))
        var addresses: [DNSName: [DNSAddress]] = [:]
        var addressTTL: [DNSName: UInt32] = [:]
        for rr in m.additionals where names.contains(rr.name) {
            switch rr.data {
            case .a(let a), .aaaa(let a):
                if addresses[rr.name]?.contains(a) != true { addresses[rr.name, default: []].append(a) }
                addressTTL[rr.name] = min(addressTTL[rr.name] ?? .max, rr.ttl)
            default: continue
            }
        }
        var unresolved: [DNSName] = []
        for i in targets.indices {
            let name = targets[i].target
            if let found = addresses[name] {
                targets[i].addresses = found
                ttl = min(ttl, addressTTL[name] ?? .max)
            } else if !unresolved.contains(name) {
                unresolved.append(name)
            }
        }
        return (targets, unresolved, ttl == .max ? 0 : ttl)
    }
}

public enum AddressAnswer {
    /// A/AAAA records owned by the question's name (of the question's type) and their smallest TTL.
    public static func extract(from m: DNSMessage, question: DNSQuestion) -> (addresses: [DNSAddress], ttl: UInt32) {
        var out: [DNSAddress] = []
        var ttl = UInt32.max
        for rr in m.answers where rr.name == question.name && rr.type == question.type {
            switch rr.data {
            case .a(let a), .aaaa(let a):
                out.append(a)
                ttl = min(ttl, rr.ttl)
            default: continue
            }
        }
        return (out, ttl == .max ? 0 : ttl)
    }
}

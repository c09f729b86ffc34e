// Stage one for `failover:` (the VRRP pair): shape only; values are checked in
// ConfigValidator+Failover.swift.

import Yams

extension RawConfigDecoder {
    mutating func decodeFailover(_ top: FieldSet) -> RawFailover? {
        guard let failover = reader.fields("failover", in: top, allowed: ["vrrp"]) else { return nil }
        let allowed = [
            "interface", "vrid", "priority", "advert_interval", "virtual_ips", "preempt", "preempt_delay",
            "unicast_peers", "checksum", "track", "peer_sync",
        ]
        reader.require("vrrp", in: failover)
        guard let fields = reader.fields("vrrp", in: failover, allowed: allowed) else { return RawFailover() }
        var vrrp = RawVRRP()
        reader.require("interface", in: fields)
        reader.require("vrid", in: fields)
        reader.require("virtual_ips", in: fields)
        vrrp.interface = reader.text("interface", in: fields)
        vrrp.vrid = reader.int("vrid", in: fields)
        vrrp.priority = reader.int("priority", in: fields)
        vrrp.advertInterval = reader.text("advert_interval", in: fields)
        vrrp.virtualIPs = texts("virtual_ips", in: fields)
        vrrp.preempt = reader.bool("preempt", in: fields)
        vrrp.preemptDelay = reader.text("preempt_delay", in: fields)
        vrrp.unicastPeers = texts("unicast_peers", in: fields)
        vrrp.checksum = reader.text("checksum", in: fields)
        // `track` is one mapping or a list of them.
        if let node = fields["track"], !node.isNull {
            let path = fields.path.key("track")
            let items: [(Node, ConfigPath)]
            if case .sequence = node {
                items = (reader.items(node, at: path) ?? []).enumerated().map { ($1, path.index($0)) }
            } else {
                items = [(node, path)]
            }
            vrrp.track = items.map { node, path in
                guard let t = reader.fields(node, at: path, allowed: ["pool", "min_healthy", "weight"]) else {
                    return RawTrack()
                }
                reader.require("pool", in: t)
                return RawTrack(
                    pool: reader.text("pool", in: t), minHealthy: reader.int("min_healthy", in: t),
                    weight: reader.int("weight", in: t))
            }
        }
        if let sync = reader.fields("peer_sync", in: fields, allowed: ["listen", "peer", "key_file"]) {
            reader.require("peer", in: sync)
            reader.require("key_file", in: sync)
            vrrp.peerSync = RawPeerSync(
                listen: reader.text("listen", in: sync), peer: reader.text("peer", in: sync),
                keyFile: reader.text("key_file", in: sync))
        }
        return RawFailover(vrrp: vrrp)
    }

    /// A list of scalars; a wrong-shaped item is nil (and reported). Nil when absent or not a list.
    private mutating func texts(_ key: String, in fields: FieldSet) -> [String?]? {
        let path = fields.path.key(key)
        guard let items = reader.items(fields[key], at: path) else { return nil }
        return items.enumerated().map { reader.text($1, at: path.index($0)) }
    }
}

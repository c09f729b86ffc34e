// Stage two for `failover:` (see RawConfig.swift): values of the VRRP pair's settings.

extension ConfigValidator {
    static let vridRange = 1...255
    static let priorityRange = 1...255
    static let trackWeightRange = -254...254

    mutating func validateFailover(_ raw: RawFailover, poolNames: [String]?) -> FailoverConfig? {
        guard let v = raw.vrrp else { return nil }
        let path = ConfigPath.root.key("failover").key("vrrp")
        if let interface = v.interface, interface.isEmpty || interface.utf8.count > 15 || interface.contains("/") {
            problems.add(path.key("interface"), "'\(interface)' is not an interface name (1...15 characters, no '/')")
        }
        let vrid = int(v.vrid, at: path.key("vrid"), in: Self.vridRange, default: 0)
        let priority = int(v.priority, at: path.key("priority"), in: Self.priorityRange, default: 100)
        var interval = duration(v.advertInterval, at: path.key("advert_interval"), default: .milliseconds(100))
        if let i = interval {
            let ms = i.milliseconds
            if ms < 10 || ms > 40_950 || ms % 10 != 0 || i != .milliseconds(ms) {
                problems.add(
                    path.key("advert_interval"),
                    "\(v.advertInterval ?? "") must be a whole number of centiseconds within 10ms...40.95s")
                interval = nil
            }
        }
        let vipPath = path.key("virtual_ips")
        if v.virtualIPs?.isEmpty == true { problems.add(vipPath, "at least one virtual IP is required") }
        var vips: [VirtualIPConfig] = []
        for (i, text) in (v.virtualIPs ?? []).enumerated() {
            guard let text else { continue }
            guard let vip = Self.parseVirtualIP(text) else {
                problems.add(vipPath.index(i), "'\(text)' is not an IPv4 address with an optional prefix length, e.g. 10.0.0.100/24")
                continue
            }
            if vips.contains(where: { $0.address == vip.address }) {
                problems.add(vipPath.index(i), "\(vip.address) is listed twice")
            }
            vips.append(vip)
        }
        let delay = duration(v.preemptDelay, at: path.key("preempt_delay"), default: .zero, allowZero: true)
        var peers: [String] = []
        for (i, text) in (v.unicastPeers ?? []).enumerated() {
            guard let text else { continue }
            if isIPv4Text(text) { peers.append(text) } else {
                problems.add(path.key("unicast_peers").index(i), "'\(text)' is not an IPv4 address")
            }
        }
        let checksum = v.checksum.flatMap {
            choice($0, at: path.key("checksum"), what: "checksum form", among: VRRPSettings.ChecksumForm.allCases)
        }
        var track: [TrackConfig] = []
        for (i, t) in v.track.enumerated() {
            let tpath = v.track.count == 1 ? path.key("track") : path.key("track").index(i)
            if let pool = t.pool { reference(pool, at: tpath.key("pool"), kind: "pool", defined: poolNames) }
            let minHealthy = int(t.minHealthy, at: tpath.key("min_healthy"), in: 1...100_000, default: 1)
            var weight: Int?
            if let w = t.weight {
                weight = int(w, at: tpath.key("weight"), in: Self.trackWeightRange, default: 0)
                if w == 0 { problems.add(tpath.key("weight"), "0 changes nothing; leave weight out to fault the instance instead") }
            }
            if let pool = t.pool, let minHealthy, weight != nil || t.weight == nil {
                track.append(TrackConfig(pool: pool, minHealthy: minHealthy, weight: weight))
            }
        }
        var sync: PeerSyncConfig?
        if let s = v.peerSync {
            let spath = path.key("peer_sync")
            let peer = s.peer.flatMap { address($0, at: spath.key("peer")) }
            let listen = s.listen.flatMap { address($0, at: spath.key("listen")) }
            let key = s.keyFile.flatMap { filePath($0, at: spath.key("key_file")) }
            if let peer, let key {
                sync = PeerSyncConfig(
                    listen: listen ?? SocketAddress(host: peer.isIPv6 ? "::" : "0.0.0.0", port: peer.port), peer: peer,
                    keyFile: key)
            }
        }
        guard let interface = v.interface, let vrid, vrid > 0, let priority, let interval, let delay else { return nil }
        return FailoverConfig(
            vrrp: VRRPSettings(
                interface: interface, vrid: vrid, priority: priority, advertInterval: interval, virtualIPs: vips,
                preempt: v.preempt ?? true, preemptDelay: delay, unicastPeers: peers, checksum: checksum ?? .keepalived,
                track: track, peerSync: sync))
    }

    /// `a.b.c.d` or `a.b.c.d/len` (len 0...32, default 32).
    static func parseVirtualIP(_ text: String) -> VirtualIPConfig? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, isIPv4Text(String(parts[0])) else { return nil }
        var prefix = 32
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...32).contains(p), parts[1].allSatisfy(\.isASCIIDigit) else { return nil }
            prefix = p
        }
        return VirtualIPConfig(address: String(parts[0]), prefixLength: prefix)
    }
}

/// Dotted-quad IPv4, each part 0...255 without leading zeros.
func isIPv4Text(_ text: String) -> Bool {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4
        && parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCIIDigit) && (Int(p) ?? 256) <= 255
                && (p.count == 1 || p.first != "0")
        }
}

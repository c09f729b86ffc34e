// What the admin endpoint shows about the pair: `GET /v1/vrrp` and the `lbd_vrrp_*` and
// `lbd_peer_sync_*` metrics. Control thread only.

import Foundation
import VRRP

extension AdminViews {
    func vrrpJSON() -> String {
        let (status, sync, settings) = pair()
        guard let s = status, let settings else { return "{\"enabled\": false}\n" }
        var body: [String: Any] = [
            "enabled": true,
            "interface": settings.interface,
            "vrid": settings.vrid,
            "virtual_ips": settings.virtualIPs.map(\.description),
            "role": s.role.rawValue,
            "priority": Int(s.configuredPriority),
            "effective_priority": Int(s.effectivePriority),
            "faulted": s.faulted,
            "preempt": settings.preempt,
            "address": s.ownAddress,
            "master_address": s.masterAddress as Any? ?? NSNull(),
            "master_priority": s.masterPriority.map { Int($0) } as Any? ?? NSNull(),
            "advert_interval_ms": Int(s.advertIntervalCentiseconds) * 10,
            "master_advert_interval_ms": Int(s.masterAdvertIntervalCentiseconds) * 10,
            "mode": settings.unicastPeers.isEmpty ? "multicast" : "unicast",
            "transitions": s.transitions.map {
                ["at_ms": $0.atUnixMilliseconds, "from": $0.from.rawValue, "to": $0.to.rawValue, "reason": $0.reason] as [String: Any]
            },
            "counters": [
                "sent": s.sent, "received": s.received, "send_errors": s.sendErrors, "gratuitous_arps": s.gratuitousARPs,
                "dropped": s.dropped, "checksum_forms": s.checksumForms, "mismatches": s.mismatches,
            ] as [String: Any],
        ]
        if let sync, let config = settings.peerSync {
            body["peer_sync"] = [
                "peer": config.peer.description, "listen": config.listen.description,
                "exchanges": sync.exchanges, "failures": sync.failures, "applied": sync.applied, "refused": sync.refused,
                "bad_frames": sync.badFrames, "last_error": sync.lastError as Any? ?? NSNull(),
                "last_exchange_ms": sync.lastExchangeAt.map { Int64($0.timeIntervalSince1970 * 1000) } as Any? ?? NSNull(),
            ] as [String: Any]
        }
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    func pairMetrics(
        gauge: (String, String, [(String, String)], Double) -> Void, counter: (String, String, [(String, String)], Int) -> Void
    ) {
        let (status, sync, _) = pair()
        if let s = status {
            for role in [VRRPRole.initialize, .backup, .master, .fault, .resigning, .stopped] {
                gauge("lbd_vrrp_role", "The VRRP instance's role (1 for the current one).", [("role", role.rawValue)], s.role == role ? 1 : 0)
            }
            gauge("lbd_vrrp_priority", "The priority advertised (configured plus tracking).", [], Double(s.effectivePriority))
            counter("lbd_vrrp_adverts_sent_total", "Adverts sent.", [], Int(s.sent))
            counter("lbd_vrrp_adverts_received_total", "Valid adverts received for this VRID.", [], Int(s.received))
            counter("lbd_vrrp_transitions_total", "Role changes (the last 16 are in /v1/vrrp).", [], s.transitions.count)
            for reason in VRRPDropReason.allCases {
                counter("lbd_vrrp_dropped_total", "Received packets dropped, by reason.", [("reason", reason.rawValue)], Int(s.dropped[reason.rawValue] ?? 0))
            }
            for kind in ["version", "interval", "addresses"] {
                counter("lbd_vrrp_mismatches_total", "Adverts for this VRID that differ from this instance.", [("kind", kind)], Int(s.mismatches[kind] ?? 0))
            }
        }
        if let sync {
            counter("lbd_peer_sync_exchanges_total", "Completed exchanges with the peer.", [], Int(sync.exchanges))
            counter("lbd_peer_sync_failures_total", "Exchanges that failed (peer unreachable, no answer, bad answer).", [], Int(sync.failures))
            counter("lbd_peer_sync_applied_total", "Newer states from the peer applied here.", [], Int(sync.applied))
            counter("lbd_peer_sync_refused_total", "Newer states from the peer that did not validate here.", [], Int(sync.refused))
            counter("lbd_peer_sync_bad_frames_total", "Frames dropped: bad signature or malformed.", [], Int(sync.badFrames))
        }
    }
}

// The pair, from the server's side (DESIGN.md section 7): the VRRP engine runs on its own thread
// (Sources/VRRP); this file turns the config into its settings, feeds it the tracked pools'
// health, and hands a planned stop to it before the proxy drains, so the peer is serving the VIP
// before this host lets go of it. Control thread only, except where noted.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Foundation
import Logging
import VRRP

final class Failover {
    let settings: VRRPSettings
    let engine: VRRPEngine
    private let logger: Logger
    private var trackTimer: OpaquePointer?
    private var trackBox: UnsafeMutableRawPointer?
    /// What the last evaluation gave, so only changes are logged.
    private var lastTrack: (adjustment: Int, faults: [String]) = (0, [])

    init(settings: VRRPSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        let config = VRRPInstanceConfig(
            interface: settings.interface, vrid: UInt8(settings.vrid), priority: UInt8(settings.priority),
            advertIntervalCentiseconds: UInt16(settings.advertInterval.milliseconds / 10),
            virtualIPs: settings.virtualIPs.map { VirtualIP(address: $0.address, prefixLength: UInt8($0.prefixLength)) },
            preempt: settings.preempt, preemptDelayMilliseconds: Int(settings.preemptDelay.milliseconds),
            unicastPeers: settings.unicastPeers,
            checksumMode: settings.checksum == .keepalived ? .withPseudoHeader : .vrrpOnly)
        engine = VRRPEngine(config: config, logger: logger)
    }

    deinit {
        if let t = trackTimer { event_free(t) }
        if let b = trackBox { Unmanaged<TrackBox>.fromOpaque(b).release() }
    }

    /// Opens the sockets, removes VIPs a crashed run left behind, and starts as backup.
    func start(base: OpaquePointer, usable: @escaping (String) -> Int?) throws(SystemCallError) {
        do {
            try engine.start()
        } catch {
            throw SystemCallError(call: "failover.vrrp on \(settings.interface): \(error.call)", errno: error.errno)
        }
        guard !settings.track.isEmpty else { return }
        let box = Unmanaged.passRetained(TrackBox { [unowned self] in self.evaluateTrack(usable) }).toOpaque()
        trackBox = box
        trackTimer = event_new(base, -1, evs(EV_PERSIST), { _, _, ctx in
            Unmanaged<TrackBox>.fromOpaque(ctx!).takeUnretainedValue().body()
        }, box)
        var tv = settings.advertInterval.timeval
        event_add(trackTimer, &tv)
        evaluateTrack(usable)
    }

    /// `track`: a pool with fewer usable backends than `min_healthy` lowers the priority by its
    /// weight, or faults the instance when it has none. `usable(pool)`: backends that pass their
    /// checks, are not ejected and are admin-ready, in groups with a share (nil: no such pool).
    func evaluateTrack(_ usable: (String) -> Int?) {
        var adjustment = 0
        var faults: [String] = []
        for t in settings.track {
            guard let n = usable(t.pool), n < t.minHealthy else { continue }
            if let w = t.weight { adjustment += w } else { faults.append(t.pool) }
        }
        guard adjustment != lastTrack.adjustment || faults != lastTrack.faults else { return }
        logger.notice(
            "vrrp tracking changed",
            metadata: ["priority_adjustment": "\(adjustment)", "faulted_by": "\(faults.joined(separator: ","))"])
        lastTrack = (adjustment, faults)
        engine.setPriorityAdjustment(adjustment)
        engine.setFault(!faults.isEmpty, reason: faults.isEmpty ? "" : "tracked pools below min_healthy: \(faults.joined(separator: ","))")
    }
}

private final class TrackBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

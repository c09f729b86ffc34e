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
    func start(base: OpaquePointer, usable: @escaping (String) -> Int?, stalled: @escaping () -> [String]) throws(SystemCallError) {
        do {
            try engine.start()
        } catch {
            throw SystemCallError(call: "failover.vrrp on \(settings.interface): \(error.call)", errno: error.errno)
        }
        let box = Unmanaged.passRetained(TrackBox { [unowned self] in self.evaluateTrack(usable, stalled: stalled()) }).toOpaque()
        trackBox = box
        trackTimer = event_new(base, -1, evs(EV_PERSIST), { _, _, ctx in
            Unmanaged<TrackBox>.fromOpaque(ctx!).takeUnretainedValue().body()
        }, box)
        var tv = settings.advertInterval.timeval
        event_add(trackTimer, &tv)
        evaluateTrack(usable, stalled: stalled())
    }

    /// Tracking, evaluated every advert interval: a pool with fewer usable backends than
    /// `min_healthy` lowers the priority by its weight, or faults the instance when it has none;
    /// a listener that is down (its worker loop stopped turning) faults it.
    func evaluateTrack(_ usable: (String) -> Int?, stalled: [String]) {
        let (adjustment, faults) = Self.track(settings.track, usable: usable, stalled: stalled)
        guard adjustment != lastTrack.adjustment || faults != lastTrack.faults else { return }
        logger.notice(
            "vrrp tracking changed",
            metadata: ["priority_adjustment": "\(adjustment)", "faults": "\(faults.joined(separator: "; "))"])
        lastTrack = (adjustment, faults)
        engine.setPriorityAdjustment(adjustment)
        engine.setFault(!faults.isEmpty, reason: faults.joined(separator: "; "))
    }

    /// The pure part of tracking: the priority adjustment and the reasons to fault.
    /// `usable(pool)`: nil for an unknown pool; `stalled`: listeners whose loop stopped turning.
    static func track(_ track: [TrackConfig], usable: (String) -> Int?, stalled: [String]) -> (Int, [String]) {
        var adjustment = 0
        var faults: [String] = []
        for t in track {
            guard let n = usable(t.pool), n < t.minHealthy else { continue }
            if let w = t.weight {
                adjustment += w
            } else {
                faults.append("pool \(t.pool) has \(n) usable backends, fewer than min_healthy \(t.minHealthy)")
            }
        }
        if !stalled.isEmpty { faults.append("listener down: \(stalled.joined(separator: ", "))") }
        return (adjustment, faults)
    }
}

private final class TrackBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

// The VRRP engine: one instance's `VRRPMachine` driven on its own thread and event_base, so proxy
// work can never starve it (the main cause of split brain in keepalived's issue tracker,
// notes/vrrp.md section 4). The thread owns the sockets and the machine; other threads talk to
// it through `commands` and a doorbell event, and read `status`.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Logging
import Synchronization

public struct VirtualIP: Sendable, Equatable {
    public var address: String
    public var prefixLength: UInt8
    public init(address: String, prefixLength: UInt8) {
        self.address = address
        self.prefixLength = prefixLength
    }
}

public struct VRRPInstanceConfig: Sendable, Equatable {
    public var interface: String
    public var vrid: UInt8
    public var priority: UInt8
    public var advertIntervalCentiseconds: UInt16
    public var virtualIPs: [VirtualIP]
    public var preempt: Bool
    public var preemptDelayMilliseconds: Int
    /// IPv4 texts; empty: multicast to 224.0.0.18.
    public var unicastPeers: [String]
    public var checksumMode: VRRPChecksumForm
    /// Gratuitous ARPs per VIP on taking over, and again after `garpSecondBurstDelayMilliseconds`.
    public var garpCount: Int
    public var garpSecondBurstDelayMilliseconds: Int
    public var resignCapMilliseconds: Int?

    public init(
        interface: String, vrid: UInt8, priority: UInt8 = 100, advertIntervalCentiseconds: UInt16 = 10,
        virtualIPs: [VirtualIP], preempt: Bool = true, preemptDelayMilliseconds: Int = 0, unicastPeers: [String] = [],
        checksumMode: VRRPChecksumForm = .withPseudoHeader, garpCount: Int = 3, garpSecondBurstDelayMilliseconds: Int = 2000,
        resignCapMilliseconds: Int? = nil
    ) {
        self.interface = interface
        self.vrid = vrid
        self.priority = priority
        self.advertIntervalCentiseconds = advertIntervalCentiseconds
        self.virtualIPs = virtualIPs
        self.preempt = preempt
        self.preemptDelayMilliseconds = preemptDelayMilliseconds
        self.unicastPeers = unicastPeers
        self.checksumMode = checksumMode
        self.garpCount = garpCount
        self.garpSecondBurstDelayMilliseconds = garpSecondBurstDelayMilliseconds
        self.resignCapMilliseconds = resignCapMilliseconds
    }
}

/// A role change, for `/v1/vrrp`.
public struct VRRPTransition: Sendable {
    /// Wall clock, milliseconds since 1970.
    public var atUnixMilliseconds: Int64
    public var from: VRRPRole
    public var to: VRRPRole
    public var reason: String
}

public struct VRRPStatus: Sendable {
    public var role: VRRPRole = .initialize
    public var configuredPriority: UInt8 = 0
    public var effectivePriority: UInt8 = 0
    public var faulted = false
    public var ownAddress: String = ""
    public var masterAddress: String?
    public var masterPriority: UInt8?
    public var advertIntervalCentiseconds: UInt16 = 0
    public var masterAdvertIntervalCentiseconds: UInt16 = 0
    /// Last 16, oldest first.
    public var transitions: [VRRPTransition] = []
    public var sent: UInt64 = 0
    public var received: UInt64 = 0
    public var sendErrors: UInt64 = 0
    public var gratuitousARPs: UInt64 = 0
    /// By `VRRPDropReason` raw value.
    public var dropped: [String: UInt64] = [:]
    /// By `VRRPChecksumForm` raw value, of accepted adverts.
    public var checksumForms: [String: UInt64] = [:]
    /// Adverts for our VRID that differ from us: "version", "interval", "addresses".
    public var mismatches: [String: UInt64] = [:]
}

public final class VRRPEngine: Sendable {
    enum Command: Sendable {
        case adjust(Int)
        case fault(Bool, String)
        case resign
        case shutdown
    }

    public let config: VRRPInstanceConfig
    private let logger: Logger
    private let onRoleChange: @Sendable (VRRPRole) -> Void
    private let commands = Mutex<[Command]>([])
    private let statusBox = Mutex(VRRPStatus())
    /// Signalled when a resign or shutdown has finished (the VIPs are released).
    private let finished = Mutex<(done: Bool, handedOver: Bool)>((false, false))
    private let loop = Mutex<LoopHandle?>(nil)

    public init(config: VRRPInstanceConfig, logger: Logger, onRoleChange: @escaping @Sendable (VRRPRole) -> Void = { _ in }) {
        self.config = config
        self.logger = logger
        self.onRoleChange = onRoleChange
    }

    public var status: VRRPStatus { statusBox.withLock { $0 } }

    /// Opens the sockets (errors name the interface or the call, e.g. EPERM without
    /// CAP_NET_RAW), removes configured VIPs left behind by a crashed run, and starts the thread.
    public func start() throws(VRRPSystemError) {
        let vips = try config.virtualIPs.map { vip throws(VRRPSystemError) -> (UInt32, UInt8) in
            guard let a = IPv4Text.parse(vip.address) else { throw VRRPSystemError(call: "virtual IP \(vip.address)", errno: EINVAL) }
            return (a, vip.prefixLength)
        }
        let peers = try config.unicastPeers.map { text throws(VRRPSystemError) -> UInt32 in
            guard let a = IPv4Text.parse(text) else { throw VRRPSystemError(call: "unicast peer \(text)", errno: EINVAL) }
            return a
        }
        let info = try LinuxNet.interface(config.interface, excluding: Set(vips.map(\.0)))
        let fd = try LinuxNet.vrrpSocket(interface: config.interface, index: info.index, primary: info.primary)
        let arp: Int32
        do {
            arp = try LinuxNet.arpSocket()
        } catch {
            close(fd)
            throw error
        }
        let label = config.interface.utf8.count <= 11 ? "\(config.interface):lbd" : nil
        for (a, prefix) in vips {
            do {
                try LinuxNet.address(false, a, prefixLength: prefix, index: info.index, label: nil)
            } catch {
                logger.warning("vrrp: could not remove a leftover VIP", metadata: ["vip": "\(IPv4Text.format(a))", "error": "\(error)"])
            }
        }
        let runner = EngineLoop(
            engine: self, config: config, info: info, fd: fd, arpFD: arp, vips: vips, peers: peers, label: label, logger: logger)
        statusBox.withLock {
            $0.configuredPriority = config.priority
            $0.effectivePriority = config.priority
            $0.ownAddress = IPv4Text.format(info.primary)
            $0.advertIntervalCentiseconds = config.advertIntervalCentiseconds
            $0.masterAdvertIntervalCentiseconds = config.advertIntervalCentiseconds
        }
        loop.withLock { $0 = LoopHandle(runner: runner) }
        var tid = pthread_t()
        let arg = Unmanaged.passRetained(runner).toOpaque()
        let rc = pthread_create(&tid, nil, { raw in
            let r = Unmanaged<EngineLoop>.fromOpaque(raw!).takeRetainedValue()
            r.run()
            return nil
        }, arg)
        guard rc == 0 else {
            Unmanaged<EngineLoop>.fromOpaque(arg).release()
            throw VRRPSystemError(call: "pthread_create", errno: rc)
        }
        pthread_detach(tid)
        logger.info(
            "vrrp started as backup",
            metadata: [
                "interface": "\(config.interface)", "vrid": "\(config.vrid)", "priority": "\(config.priority)",
                "address": "\(IPv4Text.format(info.primary))", "advert_interval_ms": "\(Int(config.advertIntervalCentiseconds) * 10)",
                "mode": "\(peers.isEmpty ? "multicast" : "unicast")",
            ])
    }

    /// Tracking: added to the configured priority at the next event. Any thread.
    public func setPriorityAdjustment(_ delta: Int) { send(.adjust(delta)) }

    /// Tracking fault: gives up mastership and never takes it while set. Any thread.
    public func setFault(_ fault: Bool, reason: String) { send(.fault(fault, reason)) }

    /// Planned stop, make-before-break: advertise priority 0 but keep the VIPs until the new
    /// master is heard (or the machine's cap passes), then release them. Blocks up to `timeout`;
    /// returns whether a new master was heard. Any thread except the engine's.
    @discardableResult
    public func resign(timeout: Duration) -> Bool {
        guard loop.withLock({ $0 != nil }) else { return false }
        if finished.withLock({ $0.done }) { return finished.withLock { $0.handedOver } }
        send(.resign)
        return wait(timeout)
    }

    /// Immediate stop: priority 0 if master, VIPs released. Blocks up to `timeout`.
    public func stop(timeout: Duration = .seconds(1)) {
        guard loop.withLock({ $0 != nil }), !finished.withLock({ $0.done }) else { return }
        send(.shutdown)
        _ = wait(timeout)
    }

    private func wait(_ timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (done, handedOver) = finished.withLock { $0 }
            if done { return handedOver }
            usleep(2_000)
        }
        return false
    }

    private func send(_ command: Command) {
        commands.withLock { $0.append(command) }
        loop.withLock { $0?.runner.ring() }
    }

    // MARK: - For the loop thread

    fileprivate func takeCommands() -> [Command] { commands.withLock { c in defer { c = [] }; return c } }
    fileprivate func update(_ body: (inout VRRPStatus) -> Void) { statusBox.withLock { body(&$0) } }
    fileprivate func markFinished(handedOver: Bool) { finished.withLock { $0 = (true, handedOver) } }
    fileprivate func roleChanged(_ role: VRRPRole) { onRoleChange(role) }
}

/// Holds the loop so `send` can ring its doorbell.
private struct LoopHandle: Sendable {
    let runner: EngineLoop
}

/// The engine thread's state. Touched only on that thread, except `ring()` (event_active is
/// thread-safe with evthread_use_pthreads, which `start` ensures).
private final class EngineLoop: @unchecked Sendable {
    // Invariant for @unchecked: every stored property is used only on the engine thread after
    // `run()` starts; `ring()` only reads the immutable `doorbell` pointer, set before the
    // thread is created.
    unowned let engine: VRRPEngine
    let config: VRRPInstanceConfig
    let info: InterfaceInfo
    let fd: Int32
    let arpFD: Int32
    let vips: [(UInt32, UInt8)]
    let peers: [UInt32]
    let label: String?
    let logger: Logger
    let base: OpaquePointer
    private(set) var doorbell: OpaquePointer?
    private var readEvent: OpaquePointer?
    private var timer: OpaquePointer?
    private var garpTimer: OpaquePointer?
    var machine: VRRPMachine
    private var ipID: UInt16 = 0
    private var running = true
    private var lastWarning: [String: UInt64] = [:]

    init(
        engine: VRRPEngine, config: VRRPInstanceConfig, info: InterfaceInfo, fd: Int32, arpFD: Int32,
        vips: [(UInt32, UInt8)], peers: [UInt32], label: String?, logger: Logger
    ) {
        self.engine = engine
        self.config = config
        self.info = info
        self.fd = fd
        self.arpFD = arpFD
        self.vips = vips
        self.peers = peers
        self.label = label
        self.logger = logger
        evthread_use_pthreads()
        let cfg = event_config_new()
        event_config_set_flag(cfg, Int32(EVENT_BASE_FLAG_PRECISE_TIMER.rawValue))
        base = event_base_new_with_config(cfg)!
        event_config_free(cfg)
        machine = VRRPMachine(
            priority: config.priority, intervalCentiseconds: config.advertIntervalCentiseconds, preempt: config.preempt,
            preemptDelayNanos: UInt64(max(0, config.preemptDelayMilliseconds)) * 1_000_000, ownAddress: info.primary,
            resignCapNanos: config.resignCapMilliseconds.map { UInt64(max(0, $0)) * 1_000_000 })
        let me = Unmanaged.passUnretained(self).toOpaque()
        doorbell = event_new(base, -1, 0, { _, _, ctx in
            Unmanaged<EngineLoop>.fromOpaque(ctx!).takeUnretainedValue().commandsArrived()
        }, me)
        readEvent = event_new(base, fd, Int16(EV_READ | EV_PERSIST), { _, _, ctx in
            Unmanaged<EngineLoop>.fromOpaque(ctx!).takeUnretainedValue().readable()
        }, me)
        timer = event_new(base, -1, 0, { _, _, ctx in
            Unmanaged<EngineLoop>.fromOpaque(ctx!).takeUnretainedValue().fire(.timer)
        }, me)
        garpTimer = event_new(base, -1, 0, { _, _, ctx in
            Unmanaged<EngineLoop>.fromOpaque(ctx!).takeUnretainedValue().secondBurst()
        }, me)
    }

    func ring() { if let d = doorbell { event_active(d, EV_READ, 0) } }

    func run() {
        event_add(readEvent, nil)
        fire(.start)
        while running { event_base_loop(base, Int32(EVLOOP_ONCE)) }
        for e in [doorbell, readEvent, timer, garpTimer] { if let e { event_free(e) } }
        close(fd)
        close(arpFD)
        event_base_free(base)
    }

    static func now() -> VRRPInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func commandsArrived() {
        for c in engine.takeCommands() {
            switch c {
            case .adjust(let d):
                fire(.setAdjustment(d))
            case .fault(let f, let reason):
                if f != machine.faulted { logger.warning("vrrp fault \(f ? "set" : "cleared")", metadata: ["reason": "\(reason)"]) }
                fire(.setFault(f))
            case .resign:
                fire(.resign)
            case .shutdown:
                fire(.shutdown)
            }
        }
    }

    private func readable() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { return }
            received(Array(buffer.prefix(n)))
        }
    }

    private func drop(_ reason: VRRPDropReason) {
        engine.update { $0.dropped[reason.rawValue, default: 0] += 1 }
    }

    private func received(_ packet: [UInt8]) {
        switch VRRPCodec.decode(packet, requireTTL255: peers.isEmpty) {
        case .failure(let reason):
            drop(reason)
            // Another version for our VRID is counted as a mismatch too (two masters, silently, otherwise).
            if reason == .badVersion, packet.count > 21, packet[0] & 0x0F >= 5 {
                let ihl = Int(packet[0] & 0x0F) * 4
                if packet.count > ihl + 1, packet[ihl + 1] == config.vrid { mismatch("version", "version \(packet[ihl] >> 4)") }
            }
        case .success(let advert):
            guard advert.source != info.primary else { return drop(.ownPacket) }
            guard advert.vrid == config.vrid else { return drop(.otherVRID) }
            if !peers.isEmpty && !peers.contains(advert.source) { return drop(.notAPeer) }
            guard advert.version == 3 else {
                drop(.badVersion)
                return mismatch("version", "VRRPv\(advert.version) advert from \(IPv4Text.format(advert.source)); this instance speaks v3")
            }
            engine.update {
                $0.received += 1
                $0.checksumForms[advert.checksumForm.rawValue, default: 0] += 1
            }
            if advert.intervalCentiseconds != config.advertIntervalCentiseconds && advert.priority > 0 {
                mismatch("interval", "advert interval \(Int(advert.intervalCentiseconds) * 10) ms from \(IPv4Text.format(advert.source)); ours is \(Int(config.advertIntervalCentiseconds) * 10) ms")
            }
            if advert.addresses.sorted() != vips.map(\.0).sorted() {
                mismatch("addresses", "address list \(advert.addresses.map(IPv4Text.format)) from \(IPv4Text.format(advert.source)) differs from ours")
            }
            fire(.advert(source: advert.source, priority: advert.priority, intervalCentiseconds: advert.intervalCentiseconds))
        }
    }

    /// Counted every time, logged at most every 10 s per kind.
    private func mismatch(_ kind: String, _ text: String) {
        engine.update { $0.mismatches[kind, default: 0] += 1 }
        let now = Self.now()
        if now >= lastWarning[kind, default: 0] {
            lastWarning[kind] = now + 10_000_000_000
            logger.warning("vrrp: advert for our VRID does not match this instance", metadata: ["vrid": "\(config.vrid)", "mismatch": "\(text)"])
        }
    }

    private func fire(_ input: VRRPMachine.Input) {
        let before = machine.role
        let actions = machine.handle(input, now: Self.now())
        for a in actions { perform(a) }
        engine.update {
            $0.role = machine.role
            $0.effectivePriority = machine.effectivePriority
            $0.faulted = machine.faulted
            $0.masterAddress = machine.masterAddress.map(IPv4Text.format)
            $0.masterPriority = machine.masterPriority
            $0.masterAdvertIntervalCentiseconds = machine.masterIntervalCentiseconds
        }
        if machine.role != before { engine.roleChanged(machine.role) }
        if machine.role == .stopped {
            running = false
            event_base_loopbreak(base)
            return
        }
        if let t = timer {
            event_del(t)
            if let at = machine.nextDeadline {
                let now = Self.now()
                let wait = at > now ? at - now : 0
                var tv = timeval(tv_sec: Int(wait / 1_000_000_000), tv_usec: Int(wait % 1_000_000_000 / 1000))
                event_add(t, &tv)
            }
        }
    }

    private func perform(_ action: VRRPMachine.Action) {
        switch action {
        case .sendAdvert(let priority):
            sendAdvert(priority)
        case .addVIPs:
            for (a, prefix) in vips {
                do {
                    try LinuxNet.address(true, a, prefixLength: prefix, index: info.index, label: label)
                } catch {
                    logger.error("vrrp: cannot add VIP", metadata: ["vip": "\(IPv4Text.format(a))", "error": "\(error)"])
                }
            }
        case .removeVIPs:
            for (a, prefix) in vips {
                do {
                    try LinuxNet.address(false, a, prefixLength: prefix, index: info.index, label: nil)
                } catch {
                    logger.error("vrrp: cannot remove VIP", metadata: ["vip": "\(IPv4Text.format(a))", "error": "\(error)"])
                }
            }
        case .gratuitousARP:
            burst()
            if let t = garpTimer, config.garpSecondBurstDelayMilliseconds > 0 {
                event_del(t)
                let ms = config.garpSecondBurstDelayMilliseconds
                var tv = timeval(tv_sec: ms / 1000, tv_usec: ms % 1000 * 1000)
                event_add(t, &tv)
            }
        case .roleChanged(let from, let to, let reason):
            logger.notice(
                "vrrp role changed",
                metadata: [
                    "from": "\(from.rawValue)", "to": "\(to.rawValue)", "reason": "\(reason)",
                    "priority": "\(machine.effectivePriority)",
                ])
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let t = VRRPTransition(
                atUnixMilliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000, from: from, to: to, reason: reason)
            engine.update {
                $0.transitions.append(t)
                if $0.transitions.count > 16 { $0.transitions.removeFirst($0.transitions.count - 16) }
            }
        case .resignComplete(let handedOver):
            logger.notice("vrrp stopped", metadata: ["handed_over": "\(handedOver)"])
            engine.markFinished(handedOver: handedOver)
        }
    }

    private func sendAdvert(_ priority: UInt8) {
        let destinations = peers.isEmpty ? [VRRPCodec.multicastGroup] : peers
        for d in destinations {
            ipID &+= 1
            let packet = VRRPCodec.encodeIPv4(
                vrid: config.vrid, priority: priority, intervalCentiseconds: config.advertIntervalCentiseconds,
                addresses: vips.map(\.0), source: info.primary, destination: d, ipID: ipID, checksumForm: config.checksumMode)
            if let e = LinuxNet.send(fd, packet: packet, to: d) {
                engine.update { $0.sendErrors += 1 }
                logger.warning("vrrp: advert not sent", metadata: ["errno": "\(e)"])
            } else {
                engine.update { $0.sent += 1 }
            }
        }
    }

    private func burst() {
        guard machine.role == .master || machine.role == .resigning else { return }
        for (a, _) in vips {
            let frame = VRRPCodec.gratuitousARP(mac: info.mac, address: a)
            for _ in 0..<max(1, config.garpCount) {
                if LinuxNet.sendFrame(arpFD, frame, index: info.index) == nil { engine.update { $0.gratuitousARPs += 1 } }
            }
        }
    }

    private func secondBurst() { burst() }
}

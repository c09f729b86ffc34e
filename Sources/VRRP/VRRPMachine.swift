// One VRRP instance as a pure state machine (RFC 9568 section 6.4; "Active" there is master
// here). No sockets, no clock: inputs arrive with `now` (monotonic nanoseconds) and the machine
// returns the actions to carry out; `nextDeadline` says when to call it with `.timer`.
//
// Beyond the RFC, as notes/vrrp.md section 6 recommends:
// - it always starts as backup (keepalived's `state BACKUP`), so a restarting host never claims
//   the VIP before it has listened for a master_down_interval;
// - `fault` (a tracked pool below min_healthy, a link down) gives up mastership and never takes it;
// - `resign` is make-before-break: the master advertises priority 0 but keeps its VIPs until an
//   advert from the new master is seen (or `resignCap` passes), then releases them.

public typealias VRRPInstant = UInt64

public enum VRRPRole: String, Sendable, Equatable {
    case initialize
    case backup
    case master
    case fault
    /// Master that advertised priority 0 and keeps the VIPs until the new master is heard.
    case resigning
    case stopped
}

public struct VRRPMachine: Sendable {
    public enum Input: Sendable, Equatable {
        case start
        case advert(source: UInt32, priority: UInt8, intervalCentiseconds: UInt16)
        case timer
        /// Tracking: added to the configured priority (clamped to 1...254; an owner stays 255).
        case setAdjustment(Int)
        case setFault(Bool)
        /// Planned stop: hand over, then release the VIPs.
        case resign
        /// Immediate stop: priority 0 if master, release the VIPs.
        case shutdown
    }

    public enum Action: Sendable, Equatable {
        case sendAdvert(priority: UInt8)
        case addVIPs
        case removeVIPs
        case gratuitousARP
        case roleChanged(from: VRRPRole, to: VRRPRole, reason: String)
        /// The resign finished; `handedOver` is true when a new master was heard.
        case resignComplete(handedOver: Bool)
    }

    public let configuredPriority: UInt8
    /// Own advertisement interval, centiseconds.
    public let intervalCentiseconds: UInt16
    public let preempt: Bool
    public let preemptDelay: UInt64
    /// This router's primary address, for the equal-priority tie-break.
    public let ownAddress: UInt32
    /// How long a resigning master keeps its VIPs without hearing the new master.
    public let resignCap: UInt64

    public private(set) var role: VRRPRole = .initialize
    public private(set) var adjustment = 0
    public private(set) var faulted = false
    /// Learned from the master's adverts (v3); starts as our own.
    public private(set) var masterIntervalCentiseconds: UInt16
    public private(set) var masterAddress: UInt32?
    public private(set) var masterPriority: UInt8?
    private var masterDownAt: VRRPInstant?
    private var advertAt: VRRPInstant?
    private var resignUntil: VRRPInstant?
    /// preempt_delay: when a lower-priority master was first seen, preemption waits until this.
    private var preemptAllowedAt: VRRPInstant?

    public init(
        priority: UInt8, intervalCentiseconds: UInt16, preempt: Bool = true, preemptDelayNanos: UInt64 = 0,
        ownAddress: UInt32, resignCapNanos: UInt64? = nil
    ) {
        configuredPriority = priority
        self.intervalCentiseconds = max(1, intervalCentiseconds)
        self.preempt = preempt
        preemptDelay = preemptDelayNanos
        self.ownAddress = ownAddress
        masterIntervalCentiseconds = self.intervalCentiseconds
        resignCap = resignCapNanos ?? (2 * UInt64(self.intervalCentiseconds) * 10_000_000 + 100_000_000)
    }

    /// The priority advertised: configured + tracking, never 0 or 255 unless configured 255.
    public var effectivePriority: UInt8 {
        if configuredPriority == 255 { return 255 }
        return UInt8(min(254, max(1, Int(configuredPriority) + adjustment)))
    }

    public var nextDeadline: VRRPInstant? {
        switch role {
        case .backup: [masterDownAt].compactMap { $0 }.min()
        case .master: advertAt
        case .resigning: [advertAt, resignUntil].compactMap { $0 }.min()
        case .initialize, .fault, .stopped: nil
        }
    }

    // MARK: - Timer math (RFC 9568 section 6.1, v3: scaled by the master's interval)

    static func nanos(centiseconds: UInt16) -> UInt64 { UInt64(centiseconds) * 10_000_000 }

    public static func skewTime(priority: UInt8, intervalCentiseconds: UInt16) -> UInt64 {
        (256 - UInt64(priority)) * nanos(centiseconds: intervalCentiseconds) / 256
    }

    public static func masterDownInterval(priority: UInt8, intervalCentiseconds: UInt16) -> UInt64 {
        3 * nanos(centiseconds: intervalCentiseconds) + skewTime(priority: priority, intervalCentiseconds: intervalCentiseconds)
    }

    private var ownInterval: UInt64 { Self.nanos(centiseconds: intervalCentiseconds) }

    private var downInterval: UInt64 {
        Self.masterDownInterval(priority: effectivePriority, intervalCentiseconds: masterIntervalCentiseconds)
    }

    // MARK: - Transitions

    public mutating func handle(_ input: Input, now: VRRPInstant) -> [Action] {
        switch (role, input) {
        case (.stopped, _):
            return []
        case (_, .setAdjustment(let a)):
            adjustment = a
            return []
        case (.initialize, .start):
            if faulted { return become(.fault, "tracking fault at start", now: now) }
            if configuredPriority == 255 { return takeOver(now: now, reason: "address owner (priority 255)") }
            return become(.backup, "start", now: now)
        case (.initialize, .setFault(let f)):
            faulted = f
            return []
        case (.initialize, .resign), (.initialize, .shutdown):
            return become(.stopped, "stopped before start", now: now) + [.resignComplete(handedOver: false)]
        case (.initialize, .advert), (.initialize, .timer):
            return []

        case (.backup, .start), (.master, .start), (.fault, .start), (.resigning, .start):
            return []
        case (.backup, .timer):
            guard let at = masterDownAt, now >= at else { return [] }
            return takeOver(now: now, reason: masterAddress == nil ? "no master heard" : "master down")
        case (.backup, .advert(let source, let priority, let interval)):
            return backupHeard(source: source, priority: priority, interval: interval, now: now)
        case (.backup, .setFault(let f)):
            faulted = f
            return f ? become(.fault, "tracking fault", now: now) : []
        case (.backup, .resign), (.backup, .shutdown):
            return become(.stopped, "stop", now: now) + [.resignComplete(handedOver: false)]

        case (.master, .timer):
            guard let at = advertAt, now >= at else { return [] }
            // On an absolute grid; after a stall longer than an interval, send now and re-grid.
            advertAt = now >= at + ownInterval ? now + ownInterval : at + ownInterval
            return [.sendAdvert(priority: effectivePriority)]
        case (.master, .advert(let source, let priority, let interval)):
            return masterHeard(source: source, priority: priority, interval: interval, now: now)
        case (.master, .setFault(let f)):
            faulted = f
            guard f else { return [] }
            return [.sendAdvert(priority: 0), .removeVIPs] + become(.fault, "tracking fault", now: now)
        case (.master, .resign):
            resignUntil = now + resignCap
            advertAt = now + ownInterval
            return [.sendAdvert(priority: 0)] + become(.resigning, "planned stop: priority 0, VIPs kept until the new master is heard", now: now)
        case (.master, .shutdown):
            return [.sendAdvert(priority: 0), .removeVIPs] + become(.stopped, "shutdown", now: now)
                + [.resignComplete(handedOver: false)]

        case (.resigning, .advert(_, let priority, _)):
            guard priority > 0 else { return [] }
            return [.removeVIPs] + become(.stopped, "new master heard", now: now) + [.resignComplete(handedOver: true)]
        case (.resigning, .timer):
            if let until = resignUntil, now >= until {
                return [.removeVIPs] + become(.stopped, "no new master within the resign cap", now: now)
                    + [.resignComplete(handedOver: false)]
            }
            guard let at = advertAt, now >= at else { return [] }
            advertAt = now + ownInterval
            return [.sendAdvert(priority: 0)]
        case (.resigning, .setFault(let f)):
            faulted = f
            return []
        case (.resigning, .resign):
            return []
        case (.resigning, .shutdown):
            return [.removeVIPs] + become(.stopped, "shutdown while resigning", now: now) + [.resignComplete(handedOver: false)]

        case (.fault, .advert(let source, let priority, let interval)):
            if priority > 0 {
                masterAddress = source
                masterPriority = priority
                masterIntervalCentiseconds = interval
            }
            return []
        case (.fault, .timer):
            return []
        case (.fault, .setFault(let f)):
            faulted = f
            return f ? [] : become(.backup, "tracking recovered", now: now)
        case (.fault, .resign), (.fault, .shutdown):
            return become(.stopped, "stop", now: now) + [.resignComplete(handedOver: false)]
        }
    }

    private mutating func backupHeard(source: UInt32, priority: UInt8, interval: UInt16, now: VRRPInstant) -> [Action] {
        if priority == 0 {
            masterDownAt = now + Self.skewTime(priority: effectivePriority, intervalCentiseconds: masterIntervalCentiseconds)
            return []
        }
        let lower = priority < effectivePriority
        if lower && preempt {
            if preemptDelay > 0 {
                let allowed = preemptAllowedAt ?? (now + preemptDelay)
                preemptAllowedAt = allowed
                if now < allowed { return follow(source, priority, interval, now: now) }
            }
            // Discard: the master-down timer keeps running and we take over when it fires.
            masterAddress = source
            masterPriority = priority
            return []
        }
        preemptAllowedAt = nil
        return follow(source, priority, interval, now: now)
    }

    private mutating func follow(_ source: UInt32, _ priority: UInt8, _ interval: UInt16, now: VRRPInstant) -> [Action] {
        masterAddress = source
        masterPriority = priority
        masterIntervalCentiseconds = interval
        masterDownAt = now + downInterval
        return []
    }

    private mutating func masterHeard(source: UInt32, priority: UInt8, interval: UInt16, now: VRRPInstant) -> [Action] {
        if priority == 0 {
            advertAt = now + ownInterval
            return [.sendAdvert(priority: effectivePriority)]
        }
        let mine = effectivePriority
        if priority > mine || (priority == mine && source > ownAddress) {
            masterAddress = source
            masterPriority = priority
            masterIntervalCentiseconds = interval
            masterDownAt = now + downInterval
            preemptAllowedAt = nil
            return [.removeVIPs] + become(.backup, "higher priority master \(IPv4Text.format(source)) (\(priority))", now: now)
        }
        // A lower-priority router thinks it is master (RFC 9568): assert ourselves at once and
        // refresh ARP caches that may have followed it.
        advertAt = now + ownInterval
        return [.sendAdvert(priority: mine), .gratuitousARP]
    }

    private mutating func takeOver(now: VRRPInstant, reason: String) -> [Action] {
        masterAddress = ownAddress
        masterPriority = effectivePriority
        masterIntervalCentiseconds = intervalCentiseconds
        masterDownAt = nil
        preemptAllowedAt = nil
        advertAt = now + ownInterval
        return [.sendAdvert(priority: effectivePriority), .addVIPs, .gratuitousARP] + become(.master, reason, now: now)
    }

    private mutating func become(_ next: VRRPRole, _ reason: String, now: VRRPInstant) -> [Action] {
        let previous = role
        role = next
        switch next {
        case .backup:
            masterIntervalCentiseconds = masterAddress == nil ? intervalCentiseconds : masterIntervalCentiseconds
            masterDownAt = now + downInterval
        case .fault, .stopped:
            masterDownAt = nil
            advertAt = nil
            if next == .stopped { resignUntil = nil }
        case .initialize, .master, .resigning:
            break
        }
        return previous == next ? [] : [.roleChanged(from: previous, to: next, reason: reason)]
    }
}

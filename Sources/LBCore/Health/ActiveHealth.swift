// Active health of one backend: rise/fall hysteresis and when to probe next.
//
// The shell (`HealthMonitor` with `HealthProbe`) sends a TCP or HTTP probe, turns its result into an
// `ActiveHealth.Input` and feeds it to `handle(_:)`. The returned `Transition` says whether the
// published view must change (`changed`), whether the backend is counting towards a change
// (`pending`), or neither (`unchanged`). Then `nextProbe(after:)` says when to probe again.
//
// Hysteresis follows HAProxy's `rise`/`fall`: a down backend must pass `rise` probes in a row to
// come up, an up backend must fail `fall` in a row to go down; any result of the other kind
// restarts the count. While counting (some successes while down, some failures while up) the
// backend is "in transition" and is probed at `fastInterval` so the verdict comes sooner.
//
// Probes are scheduled from the start of the previous one, up to 20% early (never late), and
// first probes spread uniformly over the interval, so many backends never probe in lockstep and a
// blackholed backend is found within fall × interval: a probe that has not answered after
// `hedgeDelay` gets a companion probe, so a slow timeout does not delay the next verdict. The jitter comes from `SplitMix64` seeded by the caller, so a
// schedule replays exactly from its seed. No clock reads: `now` is always passed in.
// Pure value type, owned by the control loop.

/// Active checks of one backend: rise/fall hysteresis and probe scheduling with jitter.
public struct ActiveHealth: Sendable {
    /// How often and how strictly a backend is checked; from `pools.NAME.health`.
    public struct Settings: Sendable, Equatable {
        /// Time between probes while the backend is steadily up or steadily down.
        public var interval: Duration
        /// How long one probe may take before it counts as `probeTimedOut` (enforced by the shell).
        public var timeout: Duration
        /// Consecutive successes that bring a down backend up. Values below 1 act as 1.
        public var rise: Int
        /// Consecutive failures that take an up backend down. Values below 1 act as 1.
        public var fall: Int

        /// Settings as validated from the config (`rise >= 1`, `fall >= 1`, `interval > 0`).
        public init(interval: Duration, timeout: Duration, rise: Int, fall: Int) {
            self.interval = interval
            self.timeout = timeout
            self.rise = rise
            self.fall = fall
        }

        /// Interval used while a backend is in transition (some successes while down, or some
        /// failures while up): interval / 4, at least 50ms, at most interval.
        public var fastInterval: Duration {
            min(interval, max(interval / 4, .milliseconds(50)))
        }

        /// A probe still unanswered after this gets a companion probe (at most one): a hung
        /// backend then fails `fall` probes within interval + (fall - 1) × hedgeDelay + timeout,
        /// which is within fall × interval whenever timeout <= interval - hedgeDelay.
        /// min(fastInterval, timeout / 2), at least 10ms.
        public var hedgeDelay: Duration {
            max(min(fastInterval, timeout / 2), .milliseconds(10))
        }
    }

    /// Whether active checks consider the backend fit for traffic.
    public enum Status: Sendable, Equatable {
        /// Passed `rise` probes in a row since it was last down.
        case up
        /// New, or failed `fall` probes in a row since it was last up.
        case down
    }

    /// The result of one finished probe.
    public enum Input: Sendable, Equatable {
        /// Connected (TCP) or got the expected status (HTTP) within the timeout.
        case probeSucceeded
        /// Refused, reset, or an unexpected response.
        case probeFailed
        /// No verdict within `Settings.timeout`; counts as a failure.
        case probeTimedOut
    }

    /// What one input did to the backend's status, so the shell knows whether to republish.
    public enum Transition: Sendable, Equatable {
        /// Status unchanged and not counting towards a change (any earlier count was cancelled).
        case unchanged
        /// Status unchanged, but the backend is now counting towards `rise` or `fall`.
        case pending
        /// `rise` or `fall` was reached: the status is now the associated one.
        case changed(Status)
    }

    /// The settings this machine was created with.
    public let settings: Settings
    /// The current verdict of active checks.
    public private(set) var status: Status
    /// Successes in a row, ending with the latest probe (0 if the latest probe failed).
    public private(set) var consecutiveSuccesses: Int
    /// Failures and timeouts in a row, ending with the latest probe (0 if the latest succeeded).
    public private(set) var consecutiveFailures: Int
    private var rng: SplitMix64

    /// New backends start `.down` (no traffic before they pass `rise` probes) unless `initial`
    /// says otherwise. `seed` drives all jitter; give each backend its own.
    public init(settings: Settings, initial: Status = .down, seed: UInt64) {
        self.settings = settings
        self.status = initial
        self.consecutiveSuccesses = 0
        self.consecutiveFailures = 0
        self.rng = SplitMix64(seed: seed)
    }

    /// Whether the backend is counting towards a change: some successes while down, or some
    /// failures while up. Probes then run at `Settings.fastInterval`.
    public var isInTransition: Bool {
        switch status {
        case .down: return consecutiveSuccesses > 0
        case .up: return consecutiveFailures > 0
        }
    }

    /// The interval the next probe is scheduled around (before jitter).
    public var currentInterval: Duration {
        isInTransition ? settings.fastInterval : settings.interval
    }

    /// Feeds one probe result. `pending` when counting towards a change, `changed` when
    /// rise/fall was reached.
    ///
    /// A result of the opposite kind restarts the count: a failure while down clears the
    /// successes, a success while up clears the failures. Both return `unchanged`.
    public mutating func handle(_ input: Input) -> Transition {
        let rise = max(1, settings.rise)
        let fall = max(1, settings.fall)
        switch (status, input) {
        case (.down, .probeSucceeded):
            consecutiveFailures = 0
            consecutiveSuccesses = Self.increment(consecutiveSuccesses)
            guard consecutiveSuccesses >= rise else { return .pending }
            status = .up
            return .changed(.up)
        case (.down, .probeFailed), (.down, .probeTimedOut):
            consecutiveSuccesses = 0
            consecutiveFailures = Self.increment(consecutiveFailures)
            return .unchanged
        case (.up, .probeSucceeded):
            consecutiveFailures = 0
            consecutiveSuccesses = Self.increment(consecutiveSuccesses)
            return .unchanged
        case (.up, .probeFailed), (.up, .probeTimedOut):
            consecutiveSuccesses = 0
            consecutiveFailures = Self.increment(consecutiveFailures)
            guard consecutiveFailures >= fall else { return .pending }
            status = .down
            return .changed(.down)
        }
    }

    /// When to start the next probe, given that the latest one started at `start`: interval (or
    /// fastInterval in transition) less a jitter of up to 20% (uniform, deterministic from the
    /// seed). Never later than the interval, so detection time is bounded by it.
    ///
    /// Call it again after `handle(_:)` when a result starts a transition, so the fast interval applies.
    public mutating func nextProbe(after start: MonotonicInstant) -> MonotonicInstant {
        let base = MonotonicInstant.nanoseconds(of: currentInterval)
        let fifth = base / 5
        // Uniform over [base - base/5, base], both ends included.
        let offset = draw(below: fifth + 1)
        return start.advanced(byNanoseconds: base - fifth).advanced(byNanoseconds: offset)
    }

    /// The first probe of a newly added backend: a uniformly random offset within [0, interval)
    /// so checks of many backends spread over the interval instead of firing together.
    public mutating func firstProbe(now: MonotonicInstant) -> MonotonicInstant {
        let base = MonotonicInstant.nanoseconds(of: settings.interval)
        guard base > 0 else { return now }
        return now.advanced(byNanoseconds: draw(below: base))
    }

    // MARK: helpers

    /// A uniform draw from `0..<bound` (`bound > 0`) by Lemire's multiply-and-reject, so no
    /// offset is favoured however large the interval.
    private mutating func draw(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "draw(below: 0)")
        var product = rng.next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = rng.next().multipliedFullWidth(by: bound)
            }
        }
        return product.high
    }

    /// `n + 1`, staying at `Int.max` (a backend probed forever must not trap).
    private static func increment(_ n: Int) -> Int {
        n == .max ? n : n + 1
    }
}

// Passive health (outlier ejection) of one backend, judged from live traffic.
//
// Workers report the outcome of each request they sent to a backend (`HealthReports`); the control
// loop feeds them to `PassiveHealth.record(_:now:)`. A connect failure is unambiguous (nothing is
// listening, or the host is gone) and ejects at once; a reset or EOF before any response, or a 5xx
// when the pool counts them, is ambiguous and ejects only after `failures` in a row. A success
// restarts the count.
//
// Ejections get longer while they keep happening, as Nomad's restart policy and Envoy's outlier
// detection do: the n-th ejection lasts `EjectionPolicy.ejectionLength(n)` (constant, exponential
// or Fibonacci, capped), and the count resets once the backend has stayed out of trouble for
// `resetAfter` after its last ejection ended. Failures reported while ejected are late answers
// from requests sent before the ejection; they neither count nor extend it.
//
// Whether an ejected backend actually leaves rotation is `RotationCap`'s call, not this one's.
// No clock reads: `now` is always passed in. Pure value types, owned by the control loop.

/// How live-traffic failures eject a backend and for how long; from `pools.NAME.passive`.
public struct EjectionPolicy: Sendable, Equatable {
    /// How ejection lengths grow with repeated ejections.
    public enum Backoff: String, Sendable, Equatable {
        /// Every ejection lasts `ejection`.
        case constant
        /// e, 2e, 4e, 8e…
        case exponential
        /// e, e, 2e, 3e, 5e, 8e…
        case fibonacci
    }

    /// Consecutive failures (resets, 5xx if enabled) that eject; default 3. Values below 1 act as 1.
    public var failures: Int
    /// First ejection length; default 5s.
    public var ejection: Duration
    /// Cap on any ejection length; default 60s.
    public var maxEjection: Duration
    /// How lengths grow; default exponential.
    public var backoff: Backoff
    /// This long without an ejection (counted from the end of the last one) resets the ejection
    /// count; default 60s.
    public var resetAfter: Duration

    /// A policy; the defaults match `PassiveConfig`'s.
    public init(
        failures: Int = 3, ejection: Duration = .seconds(5), maxEjection: Duration = .seconds(60),
        backoff: Backoff = .exponential, resetAfter: Duration = .seconds(60)
    ) {
        self.failures = failures
        self.ejection = ejection
        self.maxEjection = maxEjection
        self.backoff = backoff
        self.resetAfter = resetAfter
    }

    /// Length of the n-th ejection (n >= 1): constant e, e; exponential e, 2e, 4e…; fibonacci
    /// e, e, 2e, 3e, 5e…; capped at maxEjection. Overflow-safe for any n.
    ///
    /// `n` below 1 is treated as 1; negative durations as zero. Runs in at most ~190 steps
    /// whatever `n` is, because growth stops at the cap.
    public func ejectionLength(_ n: Int) -> Duration {
        let cap = max(.zero, maxEjection)
        let first = min(max(.zero, ejection), cap)
        guard n > 1, first > .zero else { return first }
        switch backoff {
        case .constant:
            return first
        case .exponential:
            var length = first
            for _ in 1..<n {
                // Compare before doubling so the doubling itself can never overflow.
                guard length <= cap / 2 else { return cap }
                length = length * 2
            }
            return length
        case .fibonacci:
            var (previous, length) = (first, first)  // lengths of ejections 1 and 2
            for _ in 2..<n {
                guard length <= cap - previous else { return cap }
                (previous, length) = (length, previous + length)
            }
            return length
        }
    }
}

/// Passive health (outlier ejection) of one backend from live traffic.
public struct PassiveHealth: Sendable {
    /// What happened to one request sent to the backend.
    public enum Outcome: Sendable, Equatable {
        /// A response came back (including 5xx when the pool does not count them).
        case success
        /// Refused / connect timeout: ejects at once (unambiguous).
        case connectFailed
        /// Reset/EOF before a response, or a 5xx when the pool counts them: counts towards
        /// `failures`.
        case failed
    }

    /// What the shell should do after an outcome.
    public enum Action: Sendable, Equatable {
        /// Nothing changed that the rotation depends on.
        case none
        /// An ejection began; the backend should be out of rotation until the instant (subject
        /// to `RotationCap`). Re-evaluate rotation at that instant.
        case eject(until: MonotonicInstant)
    }

    /// The policy this machine was created with.
    public let policy: EjectionPolicy
    /// Ejections counted towards backoff (since last reset).
    public private(set) var ejections: Int
    /// End of the current or most recent ejection; nil before the first one and after `readmit()`.
    public private(set) var ejectedUntil: MonotonicInstant?
    /// Failures in a row (outside ejections) since the last success or ejection.
    public private(set) var consecutiveFailures: Int
    /// When the last ejection ended or was scheduled to end, for `resetAfter`. Survives
    /// `readmit()`, so re-admitting early never shortens the stable period needed for a reset.
    private var lastEjectionEnd: MonotonicInstant?

    /// A backend with a clean record.
    public init(policy: EjectionPolicy) {
        self.policy = policy
        self.ejections = 0
        self.ejectedUntil = nil
        self.consecutiveFailures = 0
        self.lastEjectionEnd = nil
    }

    /// Whether an ejection covers `now` (the end instant itself is no longer ejected).
    public func isEjected(at now: MonotonicInstant) -> Bool {
        guard let until = ejectedUntil else { return false }
        return now < until
    }

    private enum Phase {
        case serving
        case ejected
    }

    /// Records one outcome of live traffic at `now`. While ejected, further failures are ignored
    /// (no extension). A success resets the consecutive-failure count.
    /// When an ejection begins: if the previous ejection ended more than `resetAfter` before
    /// `now`, `ejections` resets to 0 first; then ejections += 1 and the length is
    /// ejectionLength(ejections).
    public mutating func record(_ outcome: Outcome, now: MonotonicInstant) -> Action {
        let phase: Phase = isEjected(at: now) ? .ejected : .serving
        switch (phase, outcome) {
        case (.serving, .success), (.ejected, .success):
            consecutiveFailures = 0
            return .none
        case (.ejected, .connectFailed), (.ejected, .failed):
            return .none
        case (.serving, .connectFailed):
            return eject(now: now)
        case (.serving, .failed):
            if consecutiveFailures < .max { consecutiveFailures += 1 }
            guard consecutiveFailures >= max(1, policy.failures) else { return .none }
            return eject(now: now)
        }
    }

    /// Ends an ejection early: sets ejectedUntil = nil without resetting `ejections`.
    ///
    /// For the rare caller that must re-admit (the rotation cap, an operator). A passing active
    /// check is not a reason: active and passive health are separate verdicts, and a backend that
    /// answers probes can still reset live requests. The backoff keeps counting from the
    /// ejection's scheduled end, so a backend re-admitted early and failing again gets the next,
    /// longer ejection.
    public mutating func readmit() {
        ejectedUntil = nil
    }

    private mutating func eject(now: MonotonicInstant) -> Action {
        if let end = lastEjectionEnd, now - end > policy.resetAfter {
            ejections = 0
        }
        if ejections < .max { ejections += 1 }
        let until = now + policy.ejectionLength(ejections)
        ejectedUntil = until
        lastEjectionEnd = until
        consecutiveFailures = 0
        return .eject(until: until)
    }
}

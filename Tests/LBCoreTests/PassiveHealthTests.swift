// Passive health: ejection backoff tables and outcome sequences on an explicit clock (a base
// `MonotonicInstant` advanced by `Duration`s to each edge of an ejection).

import Testing

@testable import LBCore

private let t0 = MonotonicInstant(nanoseconds: 5_000 * 1_000_000_000)

@Suite struct EjectionBackoffTests {
    @Test(arguments: [
        (EjectionPolicy.Backoff.constant, [5, 5, 5, 5, 5, 5, 5, 5]),
        (.exponential, [5, 10, 20, 40, 60, 60, 60, 60]),
        (.fibonacci, [5, 5, 10, 15, 25, 40, 60, 60]),
    ])
    func defaultPolicyLengths(backoff: EjectionPolicy.Backoff, seconds: [Int64]) {
        let policy = EjectionPolicy(backoff: backoff)
        #expect((1...8).map { policy.ejectionLength($0) } == seconds.map { .seconds($0) })
    }

    @Test(arguments: [
        (EjectionPolicy.Backoff.constant, [1, 1, 1, 1, 1, 1, 1, 1]),
        (.exponential, [1, 2, 4, 8, 16, 32, 64, 128]),
        (.fibonacci, [1, 1, 2, 3, 5, 8, 13, 21]),
    ])
    func uncappedGrowth(backoff: EjectionPolicy.Backoff, seconds: [Int64]) {
        let policy = EjectionPolicy(ejection: .seconds(1), maxEjection: .seconds(1_000), backoff: backoff)
        #expect((1...8).map { policy.ejectionLength($0) } == seconds.map { .seconds($0) })
    }

    @Test(arguments: [EjectionPolicy.Backoff.constant, .exponential, .fibonacci])
    func hugeCountsHitTheCapWithoutOverflow(backoff: EjectionPolicy.Backoff) {
        let policy = EjectionPolicy(backoff: backoff)
        let cap: Duration = backoff == .constant ? .seconds(5) : .seconds(60)
        #expect(policy.ejectionLength(10_000) == cap)
        #expect(policy.ejectionLength(.max) == cap)
        // Even a cap near the end of `Duration`'s range never overflows the growth.
        let wide = EjectionPolicy(ejection: .nanoseconds(1), maxEjection: .seconds(Int64.max), backoff: backoff)
        let wideCap: Duration = backoff == .constant ? .nanoseconds(1) : .seconds(Int64.max)
        #expect(wide.ejectionLength(10_000) == wideCap)
    }

    @Test func degenerateInputs() {
        let policy = EjectionPolicy()
        #expect(policy.ejectionLength(0) == .seconds(5))
        #expect(policy.ejectionLength(-3) == .seconds(5))
        // A first ejection longer than the cap is capped too.
        #expect(EjectionPolicy(ejection: .seconds(90)).ejectionLength(1) == .seconds(60))
        #expect(EjectionPolicy(ejection: .zero).ejectionLength(.max) == .zero)
        #expect(EjectionPolicy(ejection: .seconds(-1)).ejectionLength(4) == .zero)
    }
}

@Suite struct PassiveHealthTests {
    /// Three `failed` outcomes 1 ms apart starting at `start`; returns the last action.
    private func threeFailures(_ health: inout PassiveHealth, from start: MonotonicInstant) -> PassiveHealth.Action {
        #expect(health.record(.failed, now: start) == .none)
        #expect(health.record(.failed, now: start + .milliseconds(1)) == .none)
        return health.record(.failed, now: start + .milliseconds(2))
    }

    @Test func repeatedEjectionsBackOffAndAStablePeriodResetsThem() {
        var health = PassiveHealth(policy: EjectionPolicy())
        #expect(!health.isEjected(at: t0))

        // Three failures: ejected for 5 s, up to (not including) the end instant.
        let start1 = t0 + .milliseconds(2)
        let end1 = start1 + .seconds(5)
        #expect(threeFailures(&health, from: t0) == .eject(until: end1))
        #expect(health.ejections == 1)
        #expect(health.ejectedUntil == end1)
        #expect(health.isEjected(at: start1))
        #expect(health.isEjected(at: end1 - .milliseconds(1)))
        #expect(!health.isEjected(at: end1))

        // Failures while ejected neither count nor extend it.
        for i in 1...5 {
            #expect(health.record(.failed, now: end1 - .milliseconds(Int64(i))) == .none)
            #expect(health.record(.connectFailed, now: end1 - .milliseconds(Int64(i))) == .none)
        }
        #expect(health.ejectedUntil == end1)
        #expect(health.consecutiveFailures == 0)

        // After it ends, three more: 10 s (exponential).
        let end2 = end1 + .milliseconds(2) + .seconds(10)
        #expect(threeFailures(&health, from: end1) == .eject(until: end2))
        #expect(health.ejections == 2)

        // Exactly resetAfter after the end is not "more than": the count goes on (20 s).
        var atEdge = health
        let start3 = end2 + .seconds(60) - .milliseconds(2)
        #expect(threeFailures(&atEdge, from: start3) == .eject(until: end2 + .seconds(60) + .seconds(20)))
        #expect(atEdge.ejections == 3)

        // One millisecond later it is: back to 5 s.
        var afterReset = health
        let start4 = end2 + .seconds(60) - .milliseconds(1)
        #expect(threeFailures(&afterReset, from: start4) == .eject(until: start4 + .milliseconds(2) + .seconds(5)))
        #expect(afterReset.ejections == 1)
    }

    @Test func connectFailedEjectsAtOnce() {
        var health = PassiveHealth(policy: EjectionPolicy())
        #expect(health.record(.connectFailed, now: t0) == .eject(until: t0 + .seconds(5)))
        #expect(health.isEjected(at: t0))
        // The next one after the ejection backs off like any other.
        let end = t0 + .seconds(5)
        #expect(health.record(.connectFailed, now: end) == .eject(until: end + .seconds(10)))
    }

    @Test func aSuccessResetsTheConsecutiveCount() {
        var health = PassiveHealth(policy: EjectionPolicy())
        #expect(health.record(.failed, now: t0) == .none)
        #expect(health.record(.failed, now: t0 + .milliseconds(1)) == .none)
        #expect(health.consecutiveFailures == 2)
        #expect(health.record(.success, now: t0 + .milliseconds(2)) == .none)
        #expect(health.consecutiveFailures == 0)
        #expect(health.record(.failed, now: t0 + .milliseconds(3)) == .none)
        #expect(health.record(.failed, now: t0 + .milliseconds(4)) == .none)
        let last = t0 + .milliseconds(5)
        #expect(health.record(.failed, now: last) == .eject(until: last + .seconds(5)))
    }

    @Test func oneFailureEjectsWhenThePolicySaysSo() {
        var health = PassiveHealth(policy: EjectionPolicy(failures: 1, backoff: .constant))
        #expect(health.record(.failed, now: t0) == .eject(until: t0 + .seconds(5)))
        var zero = PassiveHealth(policy: EjectionPolicy(failures: 0))
        #expect(zero.record(.failed, now: t0) == .eject(until: t0 + .seconds(5)))
    }

    @Test func readmitEndsTheEjectionButKeepsTheBackoff() {
        var health = PassiveHealth(policy: EjectionPolicy())
        #expect(health.record(.connectFailed, now: t0) == .eject(until: t0 + .seconds(5)))
        health.readmit()
        #expect(health.ejectedUntil == nil)
        #expect(!health.isEjected(at: t0 + .seconds(1)))
        #expect(health.ejections == 1)
        // Failing again right away earns the second, longer ejection.
        let now = t0 + .seconds(1)
        #expect(health.record(.connectFailed, now: now) == .eject(until: now + .seconds(10)))
    }

    @Test func fibonacciSequenceThroughRecord() {
        var health = PassiveHealth(policy: EjectionPolicy(failures: 1, backoff: .fibonacci))
        var now = t0
        var lengths: [Duration] = []
        for _ in 0..<7 {
            guard case .eject(let until) = health.record(.failed, now: now) else {
                Issue.record("no ejection at \(now)")
                return
            }
            lengths.append(until - now)
            now = until + .seconds(1)  // well within resetAfter
        }
        #expect(lengths == [5, 5, 10, 15, 25, 40, 60].map { .seconds($0) })
    }

    /// Seeded simulation: random outcomes at random steps; after every step the ejection state
    /// is consistent with the policy.
    @Test(arguments: [UInt64(11), 12, 13, 0xFEED])
    func invariantsHoldOnRandomTraffic(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let backoffs: [EjectionPolicy.Backoff] = [.constant, .exponential, .fibonacci]
        let policy = EjectionPolicy(failures: Int(rng.next() % 4) + 1, backoff: backoffs[Int(rng.next() % 3)])
        var health = PassiveHealth(policy: policy)
        var now = t0
        for step in 0..<5_000 {
            now = now + .milliseconds(Int64(rng.next() % 2_000))
            let outcomes: [PassiveHealth.Outcome] = [.success, .success, .failed, .connectFailed]
            let wasEjected = health.isEjected(at: now)
            let untilBefore = health.ejectedUntil
            let action = health.record(outcomes[Int(rng.next() % 4)], now: now)
            switch action {
            case .none:
                if wasEjected { #expect(health.ejectedUntil == untilBefore, "seed \(seed) step \(step)") }
            case .eject(let until):
                #expect(!wasEjected, "seed \(seed) step \(step)")
                #expect(until - now <= policy.maxEjection && until > now)
                #expect(until - now == policy.ejectionLength(health.ejections))
                #expect(health.ejectedUntil == until && health.consecutiveFailures == 0)
            }
            #expect(health.consecutiveFailures < policy.failures)
        }
    }
}

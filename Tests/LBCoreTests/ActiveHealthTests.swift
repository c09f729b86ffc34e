// Active health: rise/fall hysteresis, probe scheduling with jitter, and the clock arithmetic the
// health cores share. Every test runs on an explicit clock: a base `MonotonicInstant` advanced by
// `Duration`s; nothing sleeps.

import Testing

@testable import LBCore

private let t0 = MonotonicInstant(nanoseconds: 1_000 * 1_000_000_000)

private func settings(interval: Duration = .seconds(2), rise: Int = 2, fall: Int = 3) -> ActiveHealth.Settings {
    ActiveHealth.Settings(interval: interval, timeout: .seconds(1), rise: rise, fall: fall)
}

@Suite struct ActiveHealthHysteresisTests {
    @Test func newBackendsStartDown() {
        let health = ActiveHealth(settings: settings(), seed: 1)
        #expect(health.status == .down)
        #expect(health.consecutiveSuccesses == 0)
        #expect(health.consecutiveFailures == 0)
        #expect(!health.isInTransition)
        #expect(ActiveHealth(settings: settings(), initial: .up, seed: 1).status == .up)
    }

    @Test func downToUpOnlyAfterRiseSuccesses() {
        var health = ActiveHealth(settings: settings(rise: 3), seed: 1)
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.status == .down)
        #expect(health.handle(.probeSucceeded) == .changed(.up))
        #expect(health.status == .up)
        #expect(health.consecutiveSuccesses == 3)
        #expect(health.handle(.probeSucceeded) == .unchanged)
    }

    @Test func aFailureRestartsTheRiseCount() {
        var health = ActiveHealth(settings: settings(rise: 3), seed: 1)
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.handle(.probeFailed) == .unchanged)
        #expect(health.consecutiveSuccesses == 0)
        #expect(health.consecutiveFailures == 1)
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.status == .down)
        #expect(health.handle(.probeSucceeded) == .changed(.up))
    }

    @Test func upToDownAfterFallFailuresAndASuccessRestartsTheCount() {
        var health = ActiveHealth(settings: settings(fall: 3), initial: .up, seed: 1)
        #expect(health.handle(.probeFailed) == .pending)
        #expect(health.handle(.probeFailed) == .pending)
        #expect(health.handle(.probeSucceeded) == .unchanged)
        #expect(health.consecutiveFailures == 0)
        #expect(health.handle(.probeFailed) == .pending)
        #expect(health.handle(.probeFailed) == .pending)
        #expect(health.status == .up)
        #expect(health.handle(.probeFailed) == .changed(.down))
        #expect(health.status == .down)
        #expect(health.handle(.probeFailed) == .unchanged)
    }

    @Test func timeoutsCountAsFailures() {
        var health = ActiveHealth(settings: settings(fall: 3), initial: .up, seed: 1)
        #expect(health.handle(.probeTimedOut) == .pending)
        #expect(health.handle(.probeFailed) == .pending)
        #expect(health.handle(.probeTimedOut) == .changed(.down))
        #expect(health.consecutiveFailures == 3)
        // And while down, a timeout restarts the rise count like any failure.
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.handle(.probeTimedOut) == .unchanged)
        #expect(health.consecutiveSuccesses == 0)
    }

    @Test(arguments: [
        // (rise, fall, inputs, transitions) from a start at .down; S success, F failure, T timeout.
        (1, 1, "SFS", "+-+"),
        (2, 2, "SSFFSS", "p+p-p+"),
        (2, 3, "SFSSFFSFFF", "p.p+pp.pp-"),
        (0, 0, "SF", "+-"),  // below 1 acts as 1
        (3, 2, "SSTSSSTT", "pp.pp+p-"),
    ])
    func transitionTable(rise: Int, fall: Int, inputs: String, expected: String) {
        var health = ActiveHealth(settings: settings(rise: rise, fall: fall), seed: 9)
        var got = ""
        for c in inputs {
            let input: ActiveHealth.Input = c == "S" ? .probeSucceeded : c == "F" ? .probeFailed : .probeTimedOut
            switch health.handle(input) {
            case .unchanged: got += "."
            case .pending: got += "p"
            case .changed(.up): got += "+"
            case .changed(.down): got += "-"
            }
        }
        #expect(got == expected)
    }

    /// Seeded simulation: after every input the counters and the returned transition agree.
    @Test(arguments: [UInt64(1), 2, 3, 0xDEAD_BEEF])
    func invariantsHoldOnRandomInputs(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let rise = Int(rng.next() % 4) + 1
        let fall = Int(rng.next() % 4) + 1
        var health = ActiveHealth(settings: settings(rise: rise, fall: fall), seed: seed)
        for step in 0..<2_000 {
            let before = health.status
            let input: [ActiveHealth.Input] = [.probeSucceeded, .probeFailed, .probeTimedOut]
            let transition = health.handle(input[Int(rng.next() % 3)])
            #expect(health.consecutiveSuccesses == 0 || health.consecutiveFailures == 0, "seed \(seed) step \(step)")
            switch transition {
            case .changed(let status):
                #expect(status == health.status && status != before, "seed \(seed) step \(step)")
                #expect(!health.isInTransition)
                #expect(status == .up ? health.consecutiveSuccesses == rise : health.consecutiveFailures == fall)
            case .pending:
                #expect(health.status == before && health.isInTransition, "seed \(seed) step \(step)")
            case .unchanged:
                #expect(health.status == before && !health.isInTransition, "seed \(seed) step \(step)")
            }
        }
    }
}

@Suite struct ActiveHealthScheduleTests {
    @Test(arguments: [
        (Duration.seconds(2), Duration.milliseconds(500)),
        (.seconds(1), .milliseconds(250)),
        (.milliseconds(200), .milliseconds(50)),
        (.milliseconds(100), .milliseconds(50)),
        (.milliseconds(60), .milliseconds(50)),
        (.milliseconds(40), .milliseconds(40)),  // never longer than the interval itself
    ])
    func fastInterval(interval: Duration, fast: Duration) {
        #expect(settings(interval: interval).fastInterval == fast)
    }

    @Test func nextProbeIsUpToTwentyPercentEarlyAndNeverLate() {
        var health = ActiveHealth(settings: settings(interval: .seconds(2)), seed: 42)
        var earliest = t0 + .seconds(10)
        var latest = t0
        for _ in 0..<10_000 {
            let next = health.nextProbe(after: t0)
            #expect(next >= t0 + .milliseconds(1_600))
            #expect(next <= t0 + .milliseconds(2_000))
            earliest = min(earliest, next)
            latest = max(latest, next)
        }
        // Uniform over 400 ms: 10,000 draws land within 5 ms of each end.
        #expect(earliest < t0 + .milliseconds(1_605))
        #expect(latest > t0 + .milliseconds(1_995))
    }

    @Test func transitionProbesUseTheFastInterval() {
        var health = ActiveHealth(settings: settings(interval: .seconds(2), rise: 3), seed: 7)
        #expect(health.currentInterval == .seconds(2))
        #expect(health.handle(.probeSucceeded) == .pending)
        #expect(health.currentInterval == .milliseconds(500))
        for _ in 0..<1_000 {
            let next = health.nextProbe(after: t0)
            #expect(next >= t0 + .milliseconds(400) && next <= t0 + .milliseconds(500))
        }
        // Once the verdict is in, back to the normal interval.
        _ = health.handle(.probeSucceeded)
        #expect(health.handle(.probeSucceeded) == .changed(.up))
        let next = health.nextProbe(after: t0)
        #expect(next >= t0 + .milliseconds(1_600) && next <= t0 + .milliseconds(2_000))
        // A failure while up is a transition too.
        #expect(health.handle(.probeFailed) == .pending)
        #expect(health.currentInterval == .milliseconds(500))
    }

    @Test(arguments: [
        // (interval, timeout, hedge)
        (Duration.milliseconds(500), Duration.milliseconds(300), Duration.milliseconds(125)),
        (.seconds(2), .seconds(1), .milliseconds(500)),
        (.seconds(2), .milliseconds(200), .milliseconds(100)),
        (.milliseconds(40), .milliseconds(4), .milliseconds(10)),
    ])
    func hedgeDelay(interval: Duration, timeout: Duration, hedge: Duration) {
        let s = ActiveHealth.Settings(interval: interval, timeout: timeout, rise: 2, fall: 2)
        #expect(s.hedgeDelay == hedge)
    }

    @Test func firstProbesOfManyBackendsSpreadOverTheInterval() {
        let interval = Duration.seconds(2)
        var perTenth = Array(repeating: 0, count: 10)
        for seed in 0..<UInt64(1_000) {
            var health = ActiveHealth(settings: settings(interval: interval), seed: seed)
            let first = health.firstProbe(now: t0)
            #expect(first >= t0 && first < t0 + interval)
            let offset = MonotonicInstant.nanoseconds(of: first - t0)
            perTenth[Int(offset / 200_000_000)] += 1
        }
        for count in perTenth { #expect((50...150).contains(count), "\(perTenth)") }
    }

    @Test func sameSeedSameScheduleOtherSeedOtherSchedule() {
        func schedule(seed: UInt64) -> [MonotonicInstant] {
            var health = ActiveHealth(settings: settings(), seed: seed)
            var now = health.firstProbe(now: t0)
            var times = [now]
            for i in 0..<50 {
                _ = health.handle(i % 7 == 0 ? .probeFailed : .probeSucceeded)
                now = health.nextProbe(after: now)
                times.append(now)
            }
            return times
        }
        #expect(schedule(seed: 5) == schedule(seed: 5))
        #expect(schedule(seed: 5) != schedule(seed: 6))
    }

    @Test func degenerateIntervalsNeverTrap() {
        var zero = ActiveHealth(settings: settings(interval: .zero), seed: 3)
        #expect(zero.firstProbe(now: t0) == t0)
        #expect(zero.nextProbe(after: t0) == t0)
        var huge = ActiveHealth(settings: settings(interval: .seconds(Int64.max)), seed: 3)
        #expect(huge.nextProbe(after: t0) > t0 + .seconds(1_000_000_000))
        #expect(huge.firstProbe(now: t0) >= t0)
    }
}

@Suite struct MonotonicInstantTests {
    @Test func addsAndSubtracts() {
        #expect(t0 + .milliseconds(1) == MonotonicInstant(nanoseconds: t0.nanoseconds + 1_000_000))
        #expect(t0 + .seconds(2) - t0 == .seconds(2))
        #expect((t0 + .nanoseconds(1_500_000_001)) - t0 == .nanoseconds(1_500_000_001))
        #expect(t0 + .zero == t0)
        #expect(t0 < t0 + .nanoseconds(1))
    }

    @Test func negativeDurationsClampAndEarlierMinusLaterIsZero() {
        #expect(t0 + .seconds(-5) == t0)
        #expect(t0 - (t0 + .seconds(1)) == .zero)
        #expect(t0 - t0 == .zero)
    }

    @Test func saturatesInsteadOfTrapping() {
        let end = MonotonicInstant(nanoseconds: .max)
        #expect(end + .seconds(1) == end)
        #expect(t0 + .seconds(Int64.max) == end)
        #expect(end - MonotonicInstant(nanoseconds: 0) == .seconds(18_446_744_073) + .nanoseconds(709_551_615))
    }

    @Test func dropsSubNanosecondParts() {
        #expect(t0 + .nanoseconds(1) / 2 == t0)
        #expect(t0 + (.nanoseconds(3) / 2) == MonotonicInstant(nanoseconds: t0.nanoseconds + 1))
    }

    @Test func describesItselfInSeconds() {
        #expect("\(MonotonicInstant(nanoseconds: 12_000_000_500))" == "12.000000500s")
        #expect("\(MonotonicInstant(nanoseconds: 0))" == "0.000000000s")
    }
}

// Retry budget and slow start: small pure functions, checked as tables at their edges.

import Testing

@testable import LBCore

private let t0 = MonotonicInstant(nanoseconds: 77 * 1_000_000_000)

@Suite struct RetryBudgetTests {
    @Test func defaultsAreTwentyPercentWithAFloorOfThree() {
        let budget = RetryBudget()
        #expect(budget.ratio == Share(basisPoints: 2_000))
        #expect(budget.minimum == 3)
    }

    @Test(arguments: [
        // (retries in flight, requests in flight, allowed) at 20% with a floor of 3
        (0, 0, true), (2, 0, true), (3, 0, false),
        (2, 14, true), (3, 14, false),  // 14 × 20% = 2.8 → 2, the floor of 3 applies
        (3, 20, true), (4, 20, false),  // 20 × 20% = 4
        (19, 100, true), (20, 100, false),
        (198, 999, true), (199, 999, false), (200, 1_004, false), (200, 1_005, true),
        (0, -5, true), (-1, 0, true),
    ])
    func defaultBudget(retries: Int, requests: Int, allowed: Bool) {
        #expect(RetryBudget().allows(retriesInFlight: retries, requestsInFlight: requests) == allowed)
    }

    @Test(arguments: [
        // (basis points, minimum, requests in flight, limit)
        (2_000, 3, 0, 3), (2_000, 3, 20, 4), (2_000, 0, 4, 0), (2_000, 0, 5, 1),
        (0, 0, 1_000, 0), (0, 3, 1_000, 3), (10_000, 0, 17, 17), (25_000, 0, 17, 17), (-500, 2, 100, 2),
        (1, 0, 9_999, 0), (1, 0, 10_000, 1),
        (2_000, 3, Int.max, 1_844_674_407_370_955_161), (10_000, 3, Int.max, Int.max),
    ])
    func limitTable(basisPoints: Int, minimum: Int, requests: Int, limit: Int) {
        let budget = RetryBudget(ratio: Share(basisPoints: basisPoints), minimum: minimum)
        #expect(budget.limit(requestsInFlight: requests) == limit)
    }

    @Test func aZeroBudgetNeverRetries() {
        let none = RetryBudget(ratio: Share(basisPoints: 0), minimum: 0)
        for requests in [0, 1, 100, 1_000_000] {
            #expect(!none.allows(retriesInFlight: 0, requestsInFlight: requests))
        }
    }
}

@Suite struct SlowStartTests {
    @Test(arguments: [
        // (elapsed ms, weight) for weight 100 over a 10 s window: 10 → 100 linearly, rounded down
        (Int64(0), 10), (1, 10), (111, 10), (112, 11), (1_000, 19), (5_000, 55), (9_000, 91),
        (9_999, 99), (10_000, 100), (20_000, 100),
    ])
    func rampsLinearlyFromATenth(elapsedMilliseconds: Int64, expected: Int) {
        let now = t0 + .milliseconds(elapsedMilliseconds)
        #expect(SlowStart.weight(100, upSince: t0, now: now, window: .seconds(10)) == expected)
    }

    @Test(arguments: [
        // (weight, elapsed ms, weight) over a 10 s window: the start is at least 1
        (1, Int64(0), 1), (1, 5_000, 1), (5, 0, 1), (5, 5_000, 3), (5, 10_000, 5),
        (256, 0, 25), (256, 5_000, 140), (256, 9_999, 255), (19, 0, 1), (20, 0, 2),
    ])
    func smallAndLargeWeights(weight: Int, elapsedMilliseconds: Int64, expected: Int) {
        let now = t0 + .milliseconds(elapsedMilliseconds)
        #expect(SlowStart.weight(weight, upSince: t0, now: now, window: .seconds(10)) == expected)
    }

    @Test func noWindowMeansFullWeight() {
        #expect(SlowStart.weight(100, upSince: t0, now: t0, window: .zero) == 100)
        #expect(SlowStart.weight(100, upSince: t0, now: t0, window: .seconds(-3)) == 100)
    }

    @Test func edgeCasesNeverTrap() {
        // A clock reading before upSince gives the starting weight.
        #expect(SlowStart.weight(100, upSince: t0 + .seconds(1), now: t0, window: .seconds(10)) == 10)
        // Drained (0) stays 0; nonsense stays as it is.
        #expect(SlowStart.weight(0, upSince: t0, now: t0, window: .seconds(10)) == 0)
        #expect(SlowStart.weight(-2, upSince: t0, now: t0, window: .seconds(10)) == -2)
        // Huge weights and windows: no overflow in the interpolation.
        let half = SlowStart.weight(.max, upSince: t0, now: t0 + .seconds(5), window: .seconds(10))
        #expect(half == Int.max / 10 + (Int.max - Int.max / 10) / 2)
        #expect(SlowStart.weight(100, upSince: t0, now: t0 + .seconds(1), window: .seconds(Int64.max)) == 10)
    }

    @Test func neverDecreasesOverTheWindow() {
        var previous = 0
        for ms in stride(from: Int64(0), through: 31_000, by: 250) {
            let w = SlowStart.weight(37, upSince: t0, now: t0 + .milliseconds(ms), window: .seconds(30))
            #expect(w >= previous && w <= 37, "at \(ms) ms")
            previous = w
        }
        #expect(previous == 37)
    }
}

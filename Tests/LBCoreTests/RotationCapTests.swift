// The rotation cap: how many members of a group health logic may take out, and which ones.

import Testing

@testable import LBCore

private func pct(_ percent: Int) -> Share { Share(basisPoints: percent * 100) }

private func candidate(_ id: Int, out: Bool = true, badness: Int = 0) -> RotationCap.Candidate {
    RotationCap.Candidate(id: id, wantsOut: out, badness: badness)
}

@Suite struct RotationCapTests {
    /// Ten members; 1...6 want out with badness 10, 50, 20, 60, 30, 40; 7...10 are healthy.
    private var tenWithSixUnhealthy: [RotationCap.Candidate] {
        let bad = [10, 50, 20, 60, 30, 40]
        return (1...10).map { id in id <= 6 ? candidate(id, badness: bad[id - 1]) : candidate(id, out: false) }
    }

    @Test func takesOutOnlyTheWorstWhenCapped() {
        let decision = RotationCap.decide(tenWithSixUnhealthy, maxUnhealthy: pct(30))
        #expect(decision == RotationCap.Decision(out: [4, 2, 6], capped: true))
    }

    @Test func takesOutAllWhenWithinTheCap() {
        let candidates = (1...10).map { candidate($0, out: $0 == 3 || $0 == 8, badness: $0) }
        #expect(RotationCap.decide(candidates, maxUnhealthy: pct(30)) == .init(out: [3, 8], capped: false))
        // Exactly at the limit is not capped.
        let three = (1...10).map { candidate($0, out: $0 <= 3, badness: 1) }
        #expect(RotationCap.decide(three, maxUnhealthy: pct(30)) == .init(out: [1, 2, 3], capped: false))
    }

    @Test func aGroupOfOneIsNeverEmptiedBelowOneHundredPercent() {
        for percent in [0, 30, 50, 99] {
            let decision = RotationCap.decide([candidate(7, badness: 1_000_000)], maxUnhealthy: pct(percent))
            #expect(decision == .init(out: [], capped: true), "\(percent)%")
        }
        #expect(RotationCap.decide([candidate(7)], maxUnhealthy: Share(basisPoints: 9_999)).out.isEmpty)
        #expect(RotationCap.decide([candidate(7)], maxUnhealthy: pct(100)) == .init(out: [7], capped: false))
    }

    @Test func oneHundredPercentAllowsAllOutAndZeroNone() {
        let all = (1...5).map { candidate($0, badness: $0) }
        #expect(RotationCap.decide(all, maxUnhealthy: pct(100)) == .init(out: [1, 2, 3, 4, 5], capped: false))
        #expect(RotationCap.decide(all, maxUnhealthy: pct(0)) == .init(out: [], capped: true))
        #expect(RotationCap.decide([], maxUnhealthy: pct(30)) == .init(out: [], capped: false))
    }

    @Test func healthyMembersNeverGoOut() {
        let healthy = (1...4).map { candidate($0, out: false, badness: 1_000) }
        #expect(RotationCap.decide(healthy, maxUnhealthy: pct(100)) == .init(out: [], capped: false))
    }

    @Test func tiesKeepTheLowerIdsInWhateverTheOrder() {
        let tied = (1...10).map { candidate($0, out: $0 <= 6, badness: 5) }
        let expected = RotationCap.Decision(out: [4, 5, 6], capped: true)
        #expect(RotationCap.decide(tied, maxUnhealthy: pct(30)) == expected)
        #expect(RotationCap.decide(tied.reversed(), maxUnhealthy: pct(30)) == expected)
        var rng = SplitMix64(seed: 99)
        for _ in 0..<20 {
            #expect(RotationCap.decide(tied.shuffled(using: &rng), maxUnhealthy: pct(30)) == expected)
        }
        // Badness first, id only among equals.
        let mixed = [
            candidate(1, badness: 9), candidate(2, badness: 5), candidate(3, badness: 5), candidate(4, out: false),
        ]
        #expect(RotationCap.decide(mixed, maxUnhealthy: pct(50)) == .init(out: [1, 3], capped: true))
    }

    @Test(arguments: [
        (10, 3_000, 3), (1, 3_000, 0), (2, 3_000, 1), (3, 3_000, 1), (3, 1, 1), (3, 0, 0), (3, 9_999, 2), (4, 2_500, 1), (7, 3_000, 2), (0, 3_000, 0),
        (-4, 5_000, 0), (3, 10_000, 3), (5, 12_000, 5), (5, -100, 0),
        (Int.max, 10_000, Int.max), (Int.max, 5_000, 4_611_686_018_427_387_903),
    ])
    func limitTable(members: Int, basisPoints: Int, limit: Int) {
        #expect(RotationCap.limit(members: members, maxUnhealthy: Share(basisPoints: basisPoints)) == limit)
    }

    /// Seeded simulation: random groups and shares; the decision always respects the cap, never
    /// empties a group below 100%, and keeps the least bad in.
    @Test(arguments: [UInt64(21), 22, 23, 0xCAFE])
    func invariantsHoldOnRandomGroups(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for round in 0..<500 {
            let count = Int(rng.next() % 12)
            let share = Share(basisPoints: Int(rng.next() % 10_001))
            let candidates = (0..<count).map { id in
                candidate(id, out: rng.next() % 2 == 0, badness: Int(rng.next() % 5))
            }
            let decision = RotationCap.decide(candidates, maxUnhealthy: share)
            let wanting = candidates.filter(\.wantsOut)
            let limit = RotationCap.limit(members: count, maxUnhealthy: share)
            let context: Comment = "seed \(seed) round \(round)"
            #expect(decision.out.isSubset(of: Set(wanting.map(\.id))), context)
            #expect(decision.out.count == min(wanting.count, limit), context)
            #expect(decision.capped == (wanting.count > limit), context)
            if count > 0 && share.basisPoints < 10_000 { #expect(decision.out.count < count, context) }
            let stayed = wanting.filter { !decision.out.contains($0.id) }
            for gone in wanting where decision.out.contains(gone.id) {
                for kept in stayed {
                    let worse = gone.badness > kept.badness || (gone.badness == kept.badness && gone.id > kept.id)
                    #expect(worse, context)
                }
            }
        }
    }
}

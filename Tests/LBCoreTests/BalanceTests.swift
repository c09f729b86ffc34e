import Testing
@testable import LBCore

@Suite struct SmoothWeightedRoundRobinTests {
    @Test(arguments: [
        [1, 1, 1],
        [5, 1, 1],
        [1, 2],
        [9_900, 100],  // a 1% canary
        [3, 0, 7],
    ])
    func everyWindowIsExact(weights: [Int]) {
        var wrr = SmoothWeightedRoundRobin(weights: weights)
        let total = weights.reduce(0, +)
        for _ in 0..<3 {
            var counts = Array(repeating: 0, count: weights.count)
            for _ in 0..<total {
                let i = wrr.next()
                #expect(i != nil)
                if let i { counts[i] += 1 }
            }
            #expect(counts == weights)
        }
    }

    @Test func spreadsRatherThanBursts() {
        var wrr = SmoothWeightedRoundRobin(weights: [5, 1, 1])
        let seq = (0..<7).compactMap { _ in wrr.next() }
        // nginx's reference sequence for weights 5,1,1: a a b a c a a
        #expect(seq == [0, 0, 1, 0, 2, 0, 0])
    }

    @Test func skipsIneligibleAndReturnsNilWhenNoneLeft() {
        var wrr = SmoothWeightedRoundRobin(weights: [1, 1, 1])
        for _ in 0..<10 { #expect(wrr.next { $0 != 1 } != 1) }
        #expect(wrr.next { _ in false } == nil)
        var zero = SmoothWeightedRoundRobin(weights: [0, 0])
        #expect(zero.next() == nil)
    }
}

@Suite struct LeastLoadedTests {
    @Test func prefersTheLessLoadedOfTwo() {
        var ll = LeastLoaded(weights: [1, 1, 1, 1], seed: 42)
        let load = [10, 0, 10, 10]
        var picksOfIdle = 0
        for _ in 0..<1000 where ll.next(inFlight: { load[$0] }) == 1 { picksOfIdle += 1 }
        // Member 1 is picked whenever it is one of the two draws: 1 - (3/4 * 2/3) = 50% at least.
        #expect(picksOfIdle > 400)
        // And never a loaded member when compared against member 1 — so never below 40%, never all.
        #expect(picksOfIdle < 1000)
    }

    @Test func followsWeightsWhenIdle() {
        var ll = LeastLoaded(weights: [1, 3], seed: 7)
        var counts = [0, 0]
        for _ in 0..<4000 { if let i = ll.next(inFlight: { _ in 0 }) { counts[i] += 1 } }
        #expect(counts[1] > counts[0])
    }

    @Test func respectsEligibility() {
        var ll = LeastLoaded(weights: [1, 1, 1], seed: 1)
        for _ in 0..<200 { #expect(ll.next(isEligible: { $0 == 2 }, inFlight: { _ in 0 }) == 2) }
        #expect(ll.next(isEligible: { _ in false }, inFlight: { _ in 0 }) == nil)
    }
}

@Suite struct PoolPickerTests {
    private func pool(_ groups: [(share: Int, weights: [Int])], balance: BalanceAlgorithm = .roundRobin) -> PoolSnapshot {
        let registry = BackendRegistry()
        var port: UInt16 = 9000
        let gs = groups.enumerated().map { gi, g in
            GroupSnapshot(
                name: "g\(gi)", share: Share(basisPoints: g.share),
                members: g.weights.map { w in
                    port += 1
                    return GroupMember(backend: registry.backend(for: SocketAddress(host: "127.0.0.1", port: port))!, weight: w)
                })
        }
        return PoolSnapshot(name: "p", balance: balance, retries: 2, groups: gs)
    }

    @Test func groupSharesAreExactWhateverTheGroupSizes() {
        // 50 stable backends at 99%, 1 canary at 1%: exactly 100 of 10,000 picks go to the canary.
        let p = pool([(9_900, Array(repeating: 1, count: 50)), (100, [1])])
        var picker = PoolPicker(pool: p, seed: 1)
        let canary = p.groups[1].members[0].backend.id
        var hits = 0
        for _ in 0..<10_000 where picker.pick()?.id == canary { hits += 1 }
        #expect(hits == 100)
    }

    @Test func excludedBackendsAreSkippedAndAnEmptyPoolGivesNil() {
        let p = pool([(10_000, [1, 1])])
        var picker = PoolPicker(pool: p, seed: 1)
        let first = p.groups[0].members[0].backend.id
        for _ in 0..<10 { #expect(picker.pick(excluding: [first])?.id != first) }
        let all = p.groups[0].members.map(\.backend.id)
        #expect(picker.pick(excluding: all) == nil)
    }

    @Test func aGroupWithNoUsableBackendGivesItsShareToTheOthers() {
        let p = pool([(5_000, [1]), (5_000, [1])])
        var picker = PoolPicker(pool: p, seed: 1)
        let a = p.groups[0].members[0].backend.id
        for _ in 0..<20 { #expect(picker.pick(excluding: [a]) != nil) }
    }
}

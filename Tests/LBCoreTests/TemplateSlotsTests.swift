// Template slots: identity by (target, port), hold, reclaim, overflow, and the removal cap.

import Testing

@testable import LBCore

private let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

private func rec(_ n: Int, port: UInt16 = 8080, host: String? = nil, weight: Int = 1) -> TemplateRecord {
    TemplateRecord(
        key: TemplateKey(target: "node-\(String(repeating: "0", count: max(0, 4 - String(n).count)))\(n).node.dc1.consul.", port: port),
        address: SocketAddress(host: host ?? "10.0.\(n / 256).\(n % 256)", port: port), weight: weight, priority: 1)
}

private func table(_ capacity: Int, hold: Duration = .seconds(10), cap: Int = 3000) -> TemplateSlots {
    TemplateSlots(capacity: capacity, hold: hold, maxRemoval: Share(basisPoints: cap))
}

private func presentKeys(_ t: TemplateSlots) -> Set<TemplateKey> { Set(t.present.map(\.record.key)) }

@Suite struct TemplateSlotsTests {
    @Test func shuffledAnswersChangeNothing() {
        var t = table(32)
        let records = (0..<20).map { rec($0) }
        #expect(t.apply(records, now: t0).added.count == 20)
        let before = t.slots
        var rng = SplitMix64(seed: 99)
        for i in 0..<1_000 {
            var shuffled = records
            shuffled.shuffle(using: &rng)
            #expect(t.apply(shuffled, now: t0 + .milliseconds(Int64(i))) == TemplateSlots.Change())
        }
        #expect(t.slots == before)
    }

    @Test func severalPortsOnOneAddressAreSeveralSlots() {
        var t = table(4)
        let a = TemplateRecord(
            key: TemplateKey(target: "0a000005.addr.dc1.consul.", port: 21001),
            address: SocketAddress(host: "10.0.0.5", port: 21001), weight: 1, priority: 1)
        var b = a
        b.key.port = 21002
        b.address.port = 21002
        #expect(t.apply([a, b, a], now: t0).added == [a.key, b.key])
        #expect(t.present.count == 2)
    }

    @Test func missingRecordHoldsItsSlotThenIsFreedAndReturnsToItsSlotWithinHold() {
        var t = table(4, hold: .seconds(10))
        _ = t.apply([rec(1), rec(2), rec(3)], now: t0)
        let slotOf2 = t.present.first { $0.record.key == rec(2).key }?.index
        let gone = t.apply([rec(1), rec(3)], now: t0 + .seconds(1))
        #expect(gone.absent == [rec(2).key])
        #expect(presentKeys(t) == [rec(1).key, rec(3).key])
        #expect(t.nextExpiry == t0 + .seconds(11))
        // Back within hold: same slot.
        let back = t.apply([rec(3), rec(2), rec(1)], now: t0 + .seconds(5))
        #expect(back.returned == [rec(2).key] && back.added.isEmpty)
        #expect(t.present.first { $0.record.key == rec(2).key }?.index == slotOf2)
        // Gone again, and past hold: freed.
        _ = t.apply([rec(1), rec(3)], now: t0 + .seconds(6))
        #expect(t.expire(now: t0 + .seconds(15)).isEmpty)
        #expect(t.expire(now: t0 + .seconds(16)) == [rec(2).key])
        #expect(t.slots.compactMap { $0 }.count == 2)
    }

    @Test func newRecordTakesLowestFreeSlot() {
        var t = table(4, hold: .zero)
        _ = t.apply([rec(1), rec(2), rec(3)], now: t0)
        _ = t.apply([rec(1), rec(3)], now: t0 + .seconds(1))
        _ = t.expire(now: t0 + .seconds(1))
        let freedIndex = t.slots.firstIndex { $0 == nil }
        _ = t.apply([rec(1), rec(3), rec(9)], now: t0 + .seconds(2))
        #expect(t.slots[freedIndex!]?.record.key == rec(9).key)
    }

    @Test func replacingEveryRecordReclaimsHeldSlotsAndStaysFlat() {
        var t = table(8, hold: .seconds(60))
        var generation = (0..<8).map { rec($0) }
        _ = t.apply(generation, now: t0)
        for cycle in 1...1_000 {
            generation = (0..<8).map { rec(cycle * 8 + $0) }
            let change = t.apply(generation, now: t0 + .seconds(Int64(cycle)))
            // Old ones go in one step (the new ones keep the present count up), and the new ones
            // reclaim their slots: nothing overflows, the table never grows.
            #expect(change.added.count == 8 && change.overflow.isEmpty && change.deferred.isEmpty)
            #expect(presentKeys(t) == Set(generation.map(\.key)))
            #expect(t.slots.count == 8)
        }
        #expect(t.overflowTotal == 0)
    }

    @Test func partialAnswerRemovesAtMostMaxRemovalUntilTheWindowMoves() {
        var t = table(16, hold: .seconds(10), cap: 3000)
        let ten = (0..<10).map { rec($0) }
        _ = t.apply(ten, now: t0)
        let change = t.apply(Array(ten[..<6]), now: t0 + .seconds(1))
        #expect(change.absent == [rec(6).key, rec(7).key, rec(8).key])
        #expect(change.deferred == [rec(9).key])
        #expect(t.present.count == 7)
        // Same partial answer again within the window: no further removal.
        let again = t.apply(Array(ten[..<6]), now: t0 + .seconds(5))
        #expect(again.absent.isEmpty && again.deferred == [rec(9).key])
        // Once the window has moved past the peak of 10, the rest may go.
        let later = t.apply(Array(ten[..<6]), now: t0 + .seconds(12))
        #expect(later.absent == [rec(9).key])
    }

    @Test func groupOfTwoMayLoseOneAndALoneMemberMayBeReplacedButNotDropped() {
        var t = table(4, hold: .seconds(10))
        _ = t.apply([rec(1), rec(2)], now: t0)
        #expect(t.apply([rec(1)], now: t0 + .seconds(1)).absent == [rec(2).key])
        // A lone member replaced by another: the new one is present, so the old one may go.
        var single = table(4)
        _ = single.apply([rec(1)], now: t0)
        #expect(single.apply([rec(2)], now: t0 + .seconds(1)).absent == [rec(1).key])
        #expect(presentKeys(single) == [rec(2).key])
        // A full table of one replaced: the new record reclaims the slot.
        var tiny = table(1)
        _ = tiny.apply([rec(1)], now: t0)
        let change = tiny.apply([rec(2)], now: t0 + .seconds(1))
        #expect(change.added == [rec(2).key] && change.freed == [rec(1).key] && change.overflow.isEmpty)
    }

    @Test func moreRecordsThanSlotsAdmitsADeterministicSetAndCountsOverflow() {
        var t = table(32)
        var rng = SplitMix64(seed: 3)
        var records = (0..<40).map { rec($0) }
        records.shuffle(using: &rng)
        let change = t.apply(records, now: t0)
        #expect(change.added.count == 32 && change.overflow.count == 8)
        #expect(presentKeys(t) == Set((0..<32).map { rec($0).key }))
        #expect(t.overflowTotal == 8)
        records.shuffle(using: &rng)
        #expect(t.apply(records, now: t0 + .seconds(1)).overflow.count == 8)
        #expect(t.overflowTotal == 16)
        #expect(Set(t.slots.compactMap { $0?.record.key }).count == 32)
    }

    @Test func restorePutsRecordsInTheirSlots() {
        let t = TemplateSlots(
            capacity: 4, hold: .seconds(10), maxRemoval: Share(basisPoints: 3000),
            restoring: [(3, rec(1)), (0, rec(2)), (3, rec(5)), (9, rec(6)), (0, rec(2))])
        #expect(t.slots[3]?.record == rec(1))
        #expect(t.slots[0]?.record == rec(2))
        // Slot taken or out of range: the lowest free slot.
        #expect(t.slots[1]?.record == rec(5) && t.slots[2]?.record == rec(6))
        #expect(t.present.count == 4)
    }

    @Test func changedAddressOrWeightIsAnUpdateInPlace() {
        var t = table(4)
        _ = t.apply([rec(1), rec(2)], now: t0)
        let change = t.apply([rec(1, host: "10.9.9.9"), rec(2, weight: 10)], now: t0 + .seconds(1))
        #expect(Set(change.updated) == [rec(1).key, rec(2).key] && change.added.isEmpty && change.absent.isEmpty)
        #expect(t.present.map(\.record.address.host).contains("10.9.9.9"))
    }
}

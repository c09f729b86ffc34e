// The instance state machine with an explicit clock (RFC 9568 section 6.4, notes/vrrp.md).

import Testing

@testable import VRRP

private let ms: UInt64 = 1_000_000
private let me: UInt32 = 0x0A63_000C  // 10.99.0.12
private let higherAddress: UInt32 = 0x0A63_000D
private let lowerAddress: UInt32 = 0x0A63_000B

private func machine(_ priority: UInt8 = 100, preempt: Bool = true, delay: UInt64 = 0) -> VRRPMachine {
    var m = VRRPMachine(priority: priority, intervalCentiseconds: 10, preempt: preempt, preemptDelayNanos: delay, ownAddress: me)
    _ = m.handle(.start, now: 0)
    return m
}

private func roles(_ actions: [VRRPMachine.Action]) -> [VRRPRole] {
    actions.compactMap { if case .roleChanged(_, let to, _) = $0 { to } else { nil } }
}

@Suite("VRRP state machine") struct VRRPMachineTests {
    /// The timer table of notes/vrrp.md section 2 (ms, rounded down as integer nanoseconds).
    @Test func timerMath() {
        let table: [(UInt16, UInt8, UInt64, UInt64)] = [
            (100, 100, 609, 3609), (100, 150, 414, 3414), (100, 254, 7, 3007),
            (10, 100, 60, 360), (10, 150, 41, 341), (10, 254, 0, 300), (5, 100, 30, 180),
        ]
        for (interval, priority, skew, down) in table {
            #expect(VRRPMachine.skewTime(priority: priority, intervalCentiseconds: interval) / ms == skew)
            #expect(VRRPMachine.masterDownInterval(priority: priority, intervalCentiseconds: interval) / ms == down)
        }
    }

    @Test func startsAsBackupAndTakesOverWhenNobodyAdvertises() {
        var m = machine()
        #expect(m.role == .backup)
        #expect(m.nextDeadline == 360_937_500)
        #expect(m.handle(.timer, now: 360 * ms) == [])
        let a = m.handle(.timer, now: 361 * ms)
        #expect(a.prefix(3) == [.sendAdvert(priority: 100), .addVIPs, .gratuitousARP])
        #expect(m.role == .master && m.nextDeadline == 461 * ms)
        #expect(m.handle(.timer, now: 461 * ms) == [.sendAdvert(priority: 100)])
        #expect(m.nextDeadline == 561 * ms)
        // After a stall longer than an interval: send at once and re-grid from now.
        #expect(m.handle(.timer, now: 900 * ms) == [.sendAdvert(priority: 100)])
        #expect(m.nextDeadline == 1000 * ms)
    }

    @Test func ownerGoesMasterAtOnce() {
        var m = VRRPMachine(priority: 255, intervalCentiseconds: 10, ownAddress: me)
        let a = m.handle(.start, now: 0)
        #expect(m.role == .master && a.contains(.addVIPs) && a.first == .sendAdvert(priority: 255))
    }

    @Test func backupFollowsHigherAndAdoptsTheMastersInterval() {
        var m = machine()
        #expect(m.handle(.advert(source: lowerAddress, priority: 150, intervalCentiseconds: 20), now: 100 * ms) == [])
        #expect(m.masterIntervalCentiseconds == 20 && m.masterAddress == lowerAddress)
        // 3 x 200 ms + skew(100 at 200 ms) = 721.875 ms after the advert.
        #expect(m.nextDeadline == 100 * ms + 721_875_000)
    }

    @Test func priorityZeroShortensTheWaitToSkewTime() {
        var m = machine()
        _ = m.handle(.advert(source: lowerAddress, priority: 150, intervalCentiseconds: 10), now: 0)
        _ = m.handle(.advert(source: lowerAddress, priority: 0, intervalCentiseconds: 10), now: 50 * ms)
        #expect(m.nextDeadline == 50 * ms + 60_937_500)
        #expect(roles(m.handle(.timer, now: 111 * ms)) == [.master])
    }

    @Test func preemptTakesOverFromALowerMasterAfterTheDownInterval() {
        var m = machine(150)
        _ = m.handle(.advert(source: lowerAddress, priority: 100, intervalCentiseconds: 10), now: 0)
        // Lower-priority adverts are discarded: the timer from start keeps running.
        _ = m.handle(.advert(source: lowerAddress, priority: 100, intervalCentiseconds: 10), now: 300 * ms)
        #expect(m.handle(.timer, now: 341 * ms) == [])
        #expect(roles(m.handle(.timer, now: 342 * ms)) == [.master])
    }

    @Test func noPreemptFollowsALowerMaster() {
        var m = machine(150, preempt: false)
        for t in stride(from: UInt64(0), through: 2000, by: 100) {
            _ = m.handle(.advert(source: lowerAddress, priority: 100, intervalCentiseconds: 10), now: t * ms)
            #expect(m.handle(.timer, now: t * ms + 50 * ms) == [])
        }
        #expect(m.role == .backup)
    }

    @Test func preemptDelayWaitsBeforeTakingOver() {
        var m = machine(150, delay: 1000 * ms)
        var became: UInt64?
        for t in stride(from: UInt64(0), through: 3000, by: 100) {
            _ = m.handle(.advert(source: lowerAddress, priority: 100, intervalCentiseconds: 10), now: t * ms)
            if roles(m.handle(.timer, now: t * ms + 99 * ms)).contains(.master) { became = t; break }
        }
        // Followed until 1 s, then the down interval (341 ms) ran out.
        #expect(became.map { $0 >= 1200 && $0 <= 1400 } == true, "\(String(describing: became))")
    }

    @Test func masterYieldsToHigherPriorityAndToEqualPriorityWithHigherAddress() {
        var m = machine()
        _ = m.handle(.timer, now: 400 * ms)
        #expect(m.role == .master)
        let a = m.handle(.advert(source: lowerAddress, priority: 101, intervalCentiseconds: 10), now: 450 * ms)
        #expect(a.first == .removeVIPs && m.role == .backup)
        var n = machine()
        _ = n.handle(.timer, now: 400 * ms)
        #expect(n.handle(.advert(source: higherAddress, priority: 100, intervalCentiseconds: 10), now: 450 * ms).first == .removeVIPs)
        var o = machine()
        _ = o.handle(.timer, now: 400 * ms)
        // Equal priority, lower address; and a lower priority: the master asserts itself (RFC 9568).
        #expect(o.handle(.advert(source: lowerAddress, priority: 100, intervalCentiseconds: 10), now: 450 * ms)
            == [.sendAdvert(priority: 100), .gratuitousARP])
        #expect(o.handle(.advert(source: lowerAddress, priority: 50, intervalCentiseconds: 10), now: 460 * ms)
            == [.sendAdvert(priority: 100), .gratuitousARP])
        #expect(o.role == .master)
        // Priority 0 from another router: answer at once.
        #expect(o.handle(.advert(source: lowerAddress, priority: 0, intervalCentiseconds: 10), now: 470 * ms) == [.sendAdvert(priority: 100)])
    }

    @Test func resignKeepsTheVIPsUntilTheNewMasterIsHeard() {
        var m = machine()
        _ = m.handle(.timer, now: 400 * ms)
        let a = m.handle(.resign, now: 1000 * ms)
        #expect(a.first == .sendAdvert(priority: 0) && !a.contains(.removeVIPs) && m.role == .resigning)
        #expect(m.handle(.advert(source: lowerAddress, priority: 0, intervalCentiseconds: 10), now: 1010 * ms) == [])
        let b = m.handle(.advert(source: lowerAddress, priority: 50, intervalCentiseconds: 10), now: 1062 * ms)
        #expect(b.first == .removeVIPs && b.last == .resignComplete(handedOver: true) && m.role == .stopped)
        #expect(m.handle(.timer, now: 2000 * ms) == [])
    }

    @Test func resignWithoutAPeerReleasesAtTheCap() {
        var m = machine()
        _ = m.handle(.timer, now: 400 * ms)
        _ = m.handle(.resign, now: 1000 * ms)
        // Priority 0 is repeated every interval until the cap (2 x 100 ms + 100 ms).
        #expect(m.handle(.timer, now: 1100 * ms) == [.sendAdvert(priority: 0)])
        let a = m.handle(.timer, now: 1300 * ms)
        #expect(a.first == .removeVIPs && a.last == .resignComplete(handedOver: false))
    }

    @Test func faultGivesUpAndNeverTakesOver() {
        var m = machine()
        _ = m.handle(.timer, now: 400 * ms)
        let a = m.handle(.setFault(true), now: 500 * ms)
        #expect(a.prefix(2) == [.sendAdvert(priority: 0), .removeVIPs] && m.role == .fault && m.nextDeadline == nil)
        #expect(m.handle(.timer, now: 5000 * ms) == [])
        #expect(roles(m.handle(.setFault(false), now: 6000 * ms)) == [.backup])
        #expect(m.nextDeadline == 6000 * ms + 360_937_500)
    }

    @Test func trackingAdjustsTheAdvertisedPriority() {
        var m = machine(150)
        _ = m.handle(.setAdjustment(-100), now: 0)
        #expect(m.effectivePriority == 50)
        _ = m.handle(.setAdjustment(-200), now: 0)
        #expect(m.effectivePriority == 1)
        _ = m.handle(.setAdjustment(+200), now: 0)
        #expect(m.effectivePriority == 254)
        var owner = VRRPMachine(priority: 255, intervalCentiseconds: 10, ownAddress: me)
        _ = owner.handle(.setAdjustment(-100), now: 0)
        #expect(owner.effectivePriority == 255)
    }

    @Test func shutdownOfAMasterSendsPriorityZeroAndReleases() {
        var m = machine()
        _ = m.handle(.timer, now: 400 * ms)
        let a = m.handle(.shutdown, now: 500 * ms)
        #expect(a.prefix(2) == [.sendAdvert(priority: 0), .removeVIPs] && m.role == .stopped)
    }
}

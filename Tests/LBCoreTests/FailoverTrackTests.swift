// VRRP tracking's pure part: which pools and listeners lower the priority or fault the instance.

import Testing

@testable import LBCore

@Suite("Failover tracking") struct FailoverTrackTests {
    let usable: [String: Int] = ["web": 1, "api": 3]
    func lookup(_ pool: String) -> Int? { usable[pool] }

    @Test func weightsAddUpAndMissingWeightFaults() {
        let track = [
            TrackConfig(pool: "web", minHealthy: 2, weight: -60),
            TrackConfig(pool: "api", minHealthy: 4, weight: -30),
            TrackConfig(pool: "api", minHealthy: 3, weight: -100),
        ]
        let (adjustment, faults) = Failover.track(track, usable: lookup, stalled: [])
        #expect(adjustment == -90 && faults.isEmpty)
        let (a2, f2) = Failover.track([TrackConfig(pool: "web", minHealthy: 2, weight: nil)], usable: lookup, stalled: [])
        #expect(a2 == 0 && f2 == ["pool web has 1 usable backends, fewer than min_healthy 2"])
    }

    @Test func healthyPoolsAndUnknownPoolsChangeNothing() {
        let (a, f) = Failover.track(
            [TrackConfig(pool: "web", minHealthy: 1, weight: nil), TrackConfig(pool: "gone", minHealthy: 5, weight: -10)],
            usable: lookup, stalled: [])
        #expect(a == 0 && f.isEmpty)
    }

    @Test func aStalledListenerFaultsEvenWithoutTrack() {
        let (a, f) = Failover.track([], usable: lookup, stalled: ["public (workers 1 not turning)"])
        #expect(a == 0 && f == ["listener down: public (workers 1 not turning)"])
    }
}

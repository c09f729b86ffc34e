// Admin overrides: shares set exactly with the rest rescaled, promote and revert, and which
// overrides a reload keeps (only those whose setting the file did not change).

import Testing

@testable import LBCore

@Suite struct AdminOverridesTests {
    private func config(shares: [(String, Int)], weights: [Int] = [1, 1]) -> LBConfig {
        let yaml = """
            pools:
              web:
                groups:
            \(shares.enumerated().map { i, s in
                "      \(s.0): { share: \(Double(s.1) / 100), static: [{address: 127.0.0.1:\(9001 + i), weight: \(weights[min(i, weights.count - 1)])}] }"
            }.joined(separator: "\n"))
            listeners:
              - { name: public, bind: 127.0.0.1:8080, mode: http, pool: web }
            """
        return try! ConfigLoader.load(yaml: yaml, defaultWorkers: 1)
    }

    private func shares(_ o: AdminOverrides, _ c: LBConfig) -> [Int] {
        o.applied(to: c).config.pools[0].groups.map(\.share.basisPoints)
    }

    @Test func spreadIsProportionalAndExact() {
        #expect(AdminOverrides.spread(10_000, over: [60, 30]) == [6667, 3333])
        #expect(AdminOverrides.spread(9_999, over: [1, 1, 1]) == [3333, 3333, 3333])
        #expect(AdminOverrides.spread(100, over: [0, 0]) == [50, 50])
        #expect(AdminOverrides.spread(0, over: [5, 5]) == [0, 0])
        #expect(AdminOverrides.spread(1, over: [3, 7]) == [0, 1])
    }

    @Test func shareRescalesTheOthersAndPromoteRevertRoundTrip() throws {
        let c = config(shares: [("stable", 9_000), ("canary", 1_000)])
        var o = AdminOverrides()
        try o.setShare(100, group: "canary", in: c.pools[0])
        #expect(shares(o, c) == [9_900, 100])
        let running = o.applied(to: c).config
        try o.promote(group: "canary", in: running.pools[0])
        #expect(shares(o, c) == [0, 10_000])
        #expect(o.promoted["web"] == "canary")
        try o.revert(group: nil, in: o.applied(to: c).config.pools[0], file: c.pools[0])
        #expect(shares(o, c) == [10_000, 0])
        #expect(o.promoted["web"] == nil)
        #expect(throws: AdminChangeError.self) { try o.revert(group: nil, in: c.pools[0], file: c.pools[0]) }
        #expect(throws: AdminChangeError(status: 404, message: "pool web has no group nope")) {
            try o.setShare(1, group: "nope", in: c.pools[0])
        }
    }

    @Test func theOnlyGroupKeepsItsWholeShare() {
        let c = config(shares: [("main", 10_000)])
        var o = AdminOverrides()
        #expect(throws: AdminChangeError.self) { try o.setShare(5_000, group: "main", in: c.pools[0]) }
        #expect(o.isEmpty)
    }

    @Test func reloadKeepsOverridesTheFileDidNotChange() throws {
        let old = config(shares: [("stable", 9_000), ("canary", 1_000)], weights: [1, 1])
        var o = AdminOverrides()
        try o.setShare(500, group: "canary", in: old.pools[0])
        o.setBackend(pool: "web", address: SocketAddress(host: "127.0.0.1", port: 9001), weight: 7, state: .drain)
        o.setBackend(pool: "web", address: SocketAddress(host: "127.0.0.1", port: 9002), weight: 3, state: nil)

        // Same file: everything stays.
        var same = o
        #expect(same.reconcile(old: PoolBasis.of(old), new: PoolBasis.of(old)).isEmpty)
        #expect(same == o)

        // The file changes 9002's weight: that override goes, the rest stays.
        let reweighted = config(shares: [("stable", 9_000), ("canary", 1_000)], weights: [1, 4])
        var w = o
        let dropped = w.reconcile(old: PoolBasis.of(old), new: PoolBasis.of(reweighted))
        #expect(dropped.count == 1)
        #expect(w.backends["web"]?["127.0.0.1:9002"] == nil)
        #expect(w.backends["web"]?["127.0.0.1:9001"] == BackendOverride(weight: 7, state: .drain))
        #expect(shares(w, reweighted) == [9_500, 500])

        // The file changes the shares: the share overrides go, the admin state stays.
        let reshared = config(shares: [("stable", 8_000), ("canary", 2_000)], weights: [5, 1])
        var s = o
        _ = s.reconcile(old: PoolBasis.of(old), new: PoolBasis.of(reshared))
        #expect(shares(s, reshared) == [8_000, 2_000])
        #expect(s.backends["web"]?["127.0.0.1:9001"] == BackendOverride(weight: nil, state: .drain))
    }

    @Test func readyClearsTheStateAndAnEmptyOverrideIsRemoved() {
        var o = AdminOverrides()
        let a = SocketAddress(host: "::1", port: 80)
        o.setBackend(pool: "web", address: a, weight: nil, state: .maint)
        #expect(o.backend(pool: "web", address: a)?.state == .maint)
        #expect(o.backends["web"]?["[::1]:80"] != nil)
        o.setBackend(pool: "web", address: a, weight: nil, state: .ready)
        #expect(o.isEmpty)
    }

    @Test func badSavedSharesFallBackToTheFile() {
        let c = config(shares: [("stable", 9_000), ("canary", 1_000)])
        var o = AdminOverrides()
        o.groups["web"] = ["stable": GroupOverride(share: 9_000), "canary": GroupOverride(share: 2_000)]
        let (applied, problems) = o.applied(to: c)
        #expect(applied.pools[0].groups.map(\.share.basisPoints) == [9_000, 1_000])
        #expect(problems.count == 1)
    }

    @Test func tokensCompareWithoutAShortcut() {
        #expect(constantTimeEqual(Array("secret-token".utf8), Array("secret-token".utf8)))
        #expect(!constantTimeEqual(Array("secret-token".utf8), Array("secret-tokeN".utf8)))
        #expect(!constantTimeEqual(Array("secret".utf8), Array("secret-token".utf8)))
        #expect(!constantTimeEqual([], Array("x".utf8)))
    }
}

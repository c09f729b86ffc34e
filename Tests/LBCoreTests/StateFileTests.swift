// The state file: atomic replace, round trip, and refusal of a damaged file.

import Foundation
import Testing

@testable import LBCore

@Suite struct StateFileTests {
    private func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "lbd-state-\(UInt64.random(in: 0...UInt64.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    private let sample = PersistedState(discovery: [
        "web/main": PersistedGroup(
            srv: "_web._tcp.service.consul",
            slots: [
                PersistedSlot(slot: 0, target: "0a000001.addr.dc1.consul.", port: 8080, host: "10.0.0.1", weight: 1, priority: 1),
                PersistedSlot(slot: 3, target: "node-b.node.dc1.consul.", port: 21001, host: "2001:db8::5", weight: 10, priority: 1),
            ])
    ])

    @Test func roundTripInANewDirectoryLeavesNoTempFile() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = StateFile(path: dir + "/sub/lbd.json")
        try file.save(sample)
        let (loaded, problem) = file.load()
        #expect(problem == nil)
        #expect(loaded == sample)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/sub") == ["lbd.json"])
        // A second save replaces the first whole.
        var next = sample
        next.discovery["web/main"]?.slots.removeLast()
        try file.save(next)
        #expect(file.load().state == next)
    }

    @Test func missingFileIsNoStateAndNoProblem() {
        let (state, problem) = StateFile(path: "/nonexistent-\(UInt64.random(in: 0...UInt64.max))/lbd.json").load()
        #expect(state == nil && problem == nil)
    }

    @Test func damagedFileIsReportedNotUsed() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/lbd.json"
        try Data("{\"version\": 1, \"discovery\": {\"web/main\": {\"srv\": 5".utf8).write(to: URL(fileURLWithPath: path))
        let (state, problem) = StateFile(path: path).load()
        #expect(state == nil)
        #expect(problem?.contains("is not a valid state file") == true)
    }
}

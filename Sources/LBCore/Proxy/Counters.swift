// Counters the workers share with the control thread (/metrics), and a log-line rate limit.

import Synchronization

/// A listener's refusals and timeouts, for /metrics.
final class ListenerStats: Sendable {
    /// Connections closed at accept because the listener was at maxconn.
    let refusedMaxconn = Counter()
    /// accept() failures (EMFILE, ENFILE, ENOBUFS...), each pausing the listener for 100 ms.
    let acceptErrors = Counter()
    /// Clients closed because they took none of their buffered response for timeouts.client_write.
    let clientWriteTimeouts = Counter()
    /// Requests answered 408 because their body stalled for timeouts.client_body.
    let clientBodyTimeouts = Counter()
    /// Requests lbd answered itself without forwarding (bad framing, limits, deadlines), by
    /// status 400...599.
    private let rejectedByStatus = (0..<200).map { _ in Counter() }

    func rejected(status: Int) {
        if (400..<600).contains(status) { rejectedByStatus[status - 400].add(1) }
    }

    /// (status, count) for every status rejected at least once.
    var rejectedCounts: [(status: Int, count: Int)] {
        rejectedByStatus.indices.compactMap { i in
            let n = rejectedByStatus[i].current
            return n > 0 ? (400 + i, n) : nil
        }
    }
}

/// At most `burst` log lines per second; says how many were left out since the last one logged.
/// One per worker, so no locking (a malformed-request flood must not become a log flood, R7).
struct LogRateLimit {
    let burst: Int
    private var windowStart: UInt64 = 0
    private var inWindow = 0
    private var unlogged = 0

    init(burst: Int) { self.burst = burst }

    /// nil: do not log this one. Otherwise log it, with the number left out before it.
    mutating func admit(now: UInt64) -> Int? {
        if now &- windowStart >= 1_000_000_000 {
            windowStart = now
            inWindow = 0
        }
        guard inWindow < burst else {
            unlogged += 1
            return nil
        }
        inWindow += 1
        defer { unlogged = 0 }
        return unlogged
    }
}

/// A shared atomic counter.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    @discardableResult
    func add(_ n: Int) -> Int { value.add(n, ordering: .relaxed).newValue }
    func subtract(_ n: Int) { value.subtract(n, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

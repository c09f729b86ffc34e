// Outcomes of live traffic, sent from worker threads to the control loop, which runs the passive
// health machines. Workers append under a mutex and ring the control loop's doorbell when the queue
// was empty; the control loop drains it in one step. On the hot path a success costs one relaxed
// atomic load (`Backend.failureStreak`), and is reported only when it ends a failure streak.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// One outcome of live traffic to a backend of a pool.
struct HealthReport: Sendable {
    let pool: Int
    let backend: Int
    let outcome: PassiveHealth.Outcome
}

final class HealthReports: Sendable {
    private let queue = Locked<[HealthReport]>([])
    /// Never added, only activated from any thread (notes/libevent-swift.md section 6).
    nonisolated(unsafe) private let doorbell: OpaquePointer

    init(doorbell: OpaquePointer) {
        self.doorbell = doorbell
    }

    /// Any thread.
    func report(_ r: HealthReport) {
        let wasEmpty = queue.withLock { q in
            let wasEmpty = q.isEmpty
            if q.count < 65_536 { q.append(r) }
            return wasEmpty
        }
        if wasEmpty { event_active(doorbell, EV_READ, 0) }
    }

    /// Control loop only.
    func drain() -> [HealthReport] {
        queue.withLock { q in
            let all = q
            q.removeAll(keepingCapacity: true)
            return all
        }
    }
}

extension Worker {
    /// Reports how a request or connection to `backend` of pool `pool` went. Worker thread.
    func reportOutcome(_ outcome: PassiveHealth.Outcome, backend: Backend, pool: Int) {
        guard let reports = shared.healthReports else { return }
        switch outcome {
        case .success:
            guard backend.failureStreak.load(ordering: .relaxed) != 0 else { return }
            backend.failureStreak.store(0, ordering: .relaxed)
        case .connectFailed, .failed:
            backend.failureStreak.add(1, ordering: .relaxed)
        }
        reports.report(HealthReport(pool: pool, backend: backend.id, outcome: outcome))
    }
}

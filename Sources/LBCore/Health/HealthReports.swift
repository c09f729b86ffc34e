// Outcomes of live traffic, sent from worker threads to the control loop, which runs the passive
// health machines. Workers append under a mutex and ring the control loop's doorbell when the queue
// was empty; the control loop drains it in one step. On the hot path a success costs one relaxed
// atomic load (`Backend.failureStreak`), and is reported only when it ends a failure streak.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Synchronization

/// One outcome of live traffic to a backend of a pool.
struct HealthReport: Sendable {
    let pool: Int
    let backend: Int
    let outcome: PassiveHealth.Outcome
}

final class HealthReports: @unchecked Sendable {
    // @unchecked: `queue` is only touched with `lock` held. A pthread mutex rather than
    // Synchronization.Mutex: every worker appends here at once when a backend fails, and
    // ThreadSanitizer reported the Mutex-guarded appends as a race (it models pthread locking
    // exactly; the futex-based Mutex it did not, in one CI run of many).
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var queue: [HealthReport] = []
    /// Never added, only activated from any thread (notes/libevent-swift.md section 6).
    nonisolated(unsafe) private let doorbell: OpaquePointer

    init(doorbell: OpaquePointer) {
        self.doorbell = doorbell
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// Any thread.
    func report(_ r: HealthReport) {
        pthread_mutex_lock(lock)
        let wasEmpty = queue.isEmpty
        if queue.count < 65_536 { queue.append(r) }
        pthread_mutex_unlock(lock)
        if wasEmpty { event_active(doorbell, EV_READ, 0) }
    }

    /// Control loop only.
    func drain() -> [HealthReport] {
        pthread_mutex_lock(lock)
        let all = queue
        queue.removeAll(keepingCapacity: true)
        pthread_mutex_unlock(lock)
        return all
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

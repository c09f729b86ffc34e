// A value guarded by a pthread mutex: lbd's one lock type.
//
// Not Synchronization.Mutex: its lock and unlock run in the Swift runtime, which is not built for
// ThreadSanitizer, so TSan sees no order between two threads' locked sections and reports
// correctly locked accesses as races. CI saw it twice, in HealthReports (two workers appending)
// and in BackendTLSRegistry (a reload against a worker's lookup). pthread locking TSan models.

#if canImport(Glibc)
import Glibc
#endif

final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

// Traffic counters per backend (a member of a pool's group), per group and per pool: requests,
// responses by status class, errors, and a latency histogram. Workers record into them on the hot
// path: the counts are relaxed atomics (also read for /v1/pools), the histogram is
// swift-prometheus's (a short lock per record). /metrics renders the counts through the same
// library at scrape time (AdminViews). The control loop creates them and unregisters a backend's
// histogram when it leaves its group.

import Prometheus
import Synchronization

/// One label set's traffic. Shared by all workers.
public final class TrafficStats: Sendable {
    private let registry: PrometheusCollectorRegistry?
    private let requests = Atomic<Int>(0)
    private let r1xx = Atomic<Int>(0), r2xx = Atomic<Int>(0), r3xx = Atomic<Int>(0), r4xx = Atomic<Int>(0),
        r5xx = Atomic<Int>(0)
    private let errors = Atomic<Int>(0)
    private let duration: DurationHistogram?

    /// Seconds; the +Inf bucket is implicit.
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10),
    ]

    /// `level` is the metric prefix (`backend`, `group`, `pool`); nil `histogram` labels: none.
    init(registry: PrometheusCollectorRegistry? = nil, level: String = "", histogramLabels: [(String, String)]? = nil) {
        self.registry = registry
        duration = histogramLabels.flatMap {
            registry?.makeDurationHistogram(
                name: "lbd_\(level)_request_duration_seconds", labels: $0, buckets: Self.buckets,
                help: "Time from the request head to the end of the response.")
        }
    }

    func request() { requests.add(1, ordering: .relaxed) }

    func response(status: Int, nanoseconds: UInt64) {
        switch status / 100 {
        case 1: r1xx.add(1, ordering: .relaxed)
        case 2: r2xx.add(1, ordering: .relaxed)
        case 3: r3xx.add(1, ordering: .relaxed)
        case 4: r4xx.add(1, ordering: .relaxed)
        case 5: r5xx.add(1, ordering: .relaxed)
        default: break
        }
        duration?.record(.nanoseconds(Int64(truncatingIfNeeded: nanoseconds)))
    }

    func error() { errors.add(1, ordering: .relaxed) }

    var requestCount: Int { requests.load(ordering: .relaxed) }
    /// 1xx...5xx.
    var responseCounts: [Int] {
        [
            r1xx.load(ordering: .relaxed), r2xx.load(ordering: .relaxed), r3xx.load(ordering: .relaxed),
            r4xx.load(ordering: .relaxed), r5xx.load(ordering: .relaxed),
        ]
    }
    var errorCount: Int { errors.load(ordering: .relaxed) }

    /// Removes the histogram from /metrics (a backend that left its group).
    func unregister() {
        if let d = duration { registry?.unregisterDurationHistogram(d) }
    }
}

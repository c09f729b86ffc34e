// How many retries a pool may have in flight: a share of its requests in flight, with a floor.
//
// Retries turn a partial outage into a full one when every failed request is tried again: the
// healthy backends receive the failed backend's traffic on top of their own. Envoy
// (`retry_budget`) and Linkerd (`retryRatio` + `minRetriesPerSecond`) bound retries by a ratio of
// the live traffic instead of a fixed count per request; the floor keeps a quiet pool able to
// retry at all. Here the ratio is over requests in flight, which workers already count (one pair
// of atomic counters per pool), so the check needs no clock and no window.
// Pure value type: any thread may evaluate it over counters it read.

/// Retries limited to a fraction of requests in flight, with a floor (Envoy / Linkerd style).
public struct RetryBudget: Sendable, Equatable {
    /// Retries in flight allowed per request in flight, e.g. 2000 bp = 20%; clamped to 0...10000.
    public var ratio: Share
    /// Retries always allowed in flight, however few requests are, e.g. 3.
    public var minimum: Int

    /// A budget of `ratio` of requests in flight, never fewer than `minimum` retries.
    public init(ratio: Share = Share(basisPoints: 2000), minimum: Int = 3) {
        self.ratio = ratio
        self.minimum = minimum
    }

    /// Retries that may be in flight while `requestsInFlight` requests are:
    /// max(minimum, floor(requestsInFlight × ratio / 10000)). Negative inputs act as 0; a ratio
    /// above 10000 bp acts as 100% (each request has at most one attempt in flight, so retries in
    /// flight can never exceed requests anyway). Exact and overflow-free for any input.
    public func limit(requestsInFlight: Int) -> Int {
        let bp = min(max(ratio.basisPoints, 0), 10_000)
        // floor(n × bp / 10000) with n = q × 10000 + r, without forming n × bp.
        let (q, r) = max(0, requestsInFlight).quotientAndRemainder(dividingBy: 10_000)
        return max(minimum, q * bp + r * bp / 10_000)
    }

    /// Whether one more retry may start when `retriesInFlight` retries and `requestsInFlight`
    /// requests are in flight: retriesInFlight < max(minimum, requestsInFlight * ratio / 10000).
    ///
    /// The caller counts the retry in `retriesInFlight` once it starts and removes it when done;
    /// the original request stays counted in `requestsInFlight` throughout.
    public func allows(retriesInFlight: Int, requestsInFlight: Int) -> Bool {
        retriesInFlight < limit(requestsInFlight: requestsInFlight)
    }
}

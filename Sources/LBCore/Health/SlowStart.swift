// Slow start: a backend that comes (back) into rotation gets a fraction of its weight at first.
//
// A backend that was just started, or just recovered, often has cold caches, an unwarmed JIT or
// an empty connection pool; handing it its full share at once can knock it straight back down.
// Like Envoy's and HAProxy's `slowstart`, lbd ramps its weight linearly from 10% (at least 1, so
// it still gets some traffic to prove itself) to the full weight over a configured window.
// The control loop recomputes weights on its tick and publishes a snapshot when one changed.
// Pure function of its arguments: no clock reads, `now` is passed in.

/// Weight ramps for backends newly in rotation.
public enum SlowStart {
    /// Effective weight of a backend up since `upSince`: ramps linearly from
    /// max(1, weight * 10%) at upSince to `weight` at upSince + window; `weight` when window is 0
    /// or elapsed.
    ///
    /// Rounds down between the ends. A weight of 0 (drained) or less stays as it is; a `now`
    /// before `upSince` gives the starting weight; a negative window acts as 0.
    public static func weight(
        _ weight: Int, upSince: MonotonicInstant, now: MonotonicInstant, window: Duration
    ) -> Int {
        guard weight > 0 else { return weight }
        let windowNanos = MonotonicInstant.nanoseconds(of: window)
        let elapsedNanos = MonotonicInstant.nanoseconds(of: now - upSince)
        guard elapsedNanos < windowNanos else { return weight }
        let start = max(1, weight / 10)
        // start + (weight - start) × elapsed / window, in 128 bits so no product overflows; the
        // quotient is below weight - start, so it fits.
        let span = UInt64(weight - start)
        let (quotient, _) = windowNanos.dividingFullWidth(span.multipliedFullWidth(by: elapsedNanos))
        return start + Int(quotient)
    }
}

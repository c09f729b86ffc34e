// Time as the health cores see it: a plain count of nanoseconds on a monotonic clock.
//
// The cores never read a clock. The shell reads CLOCK_MONOTONIC once per event and passes the
// result in as `now`; cores only compare instants, add durations to them and subtract them. The
// arithmetic saturates instead of trapping, because an instant is a fact about the outside world
// (a clock value, a configured duration) and a broken input must not bring the daemon down:
// adding a huge duration pins at the end of time, and `a - b` with `b` later is zero.
// Pure value type, safe on any thread.

/// Nanoseconds on a monotonic clock; the shell makes them, cores only compare and add.
///
/// The origin is whatever the shell's clock uses (boot, for CLOCK_MONOTONIC); only differences
/// between instants from the same clock mean anything.
public struct MonotonicInstant: Sendable, Hashable, Comparable {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    /// An instant `nanoseconds` after the clock's origin.
    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    /// Orders instants by their nanosecond count.
    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool {
        a.nanoseconds < b.nanoseconds
    }

    /// `a` moved forward by `d`, saturating at the largest representable instant.
    ///
    /// A zero or negative `d` returns `a` unchanged: time in the cores never runs backwards.
    /// Sub-nanosecond parts of `d` are dropped.
    public static func + (a: MonotonicInstant, d: Duration) -> MonotonicInstant {
        a.advanced(byNanoseconds: nanoseconds(of: d))
    }

    /// `a` moved back by `d`, saturating at the clock's origin; for "was it longer ago than …"
    /// questions and for tests that stand just before an edge.
    ///
    /// A zero or negative `d` returns `a` unchanged, as for `+`.
    public static func - (a: MonotonicInstant, d: Duration) -> MonotonicInstant {
        let n = nanoseconds(of: d)
        return MonotonicInstant(nanoseconds: a.nanoseconds > n ? a.nanoseconds - n : 0)
    }

    /// The time from `b` to `a`, or zero when `b` is later than `a`.
    public static func - (a: MonotonicInstant, b: MonotonicInstant) -> Duration {
        guard a.nanoseconds > b.nanoseconds else { return .zero }
        return duration(nanoseconds: a.nanoseconds - b.nanoseconds)
    }

    /// `self` moved forward by `n` nanoseconds, saturating at `UInt64.max`.
    func advanced(byNanoseconds n: UInt64) -> MonotonicInstant {
        let (sum, overflow) = nanoseconds.addingReportingOverflow(n)
        return MonotonicInstant(nanoseconds: overflow ? .max : sum)
    }

    /// Whole nanoseconds in `d`: 0 for zero or negative durations, `UInt64.max` for durations
    /// too long to count in 64 bits (about 584 years).
    static func nanoseconds(of d: Duration) -> UInt64 {
        guard d > .zero else { return 0 }
        let (seconds, attoseconds) = d.components
        // Both components are non-negative for a positive duration.
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (total, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return carry ? .max : total
    }

    /// A duration of exactly `n` nanoseconds (every `UInt64` fits in a `Duration`).
    static func duration(nanoseconds n: UInt64) -> Duration {
        .seconds(Int64(n / 1_000_000_000)) + .nanoseconds(Int64(n % 1_000_000_000))
    }
}

extension MonotonicInstant: CustomStringConvertible {
    /// Seconds with nanosecond precision, e.g. `12.000000500s`, for logs and test failures.
    public var description: String {
        let fraction = String(nanoseconds % 1_000_000_000)
        let padded = String(repeating: "0", count: 9 - fraction.count) + fraction
        return "\(nanoseconds / 1_000_000_000).\(padded)s"
    }
}

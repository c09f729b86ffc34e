// Least-loaded picking by the power of two choices: draw two distinct eligible members at random
// (weighted), keep the one with fewer requests in flight relative to its weight. It needs no global
// ordering, so every worker can pick on its own from the shared atomic in-flight counters and
// still avoid the herd effect of "always the least loaded".

/// Picks a member by two random weighted choices compared on `inFlight / weight`.
public struct LeastLoaded: Sendable {
    public private(set) var weights: [Int]
    private var rng: SplitMix64

    public init(weights: [Int], seed: UInt64) {
        self.weights = weights.map { max(0, $0) }
        self.rng = SplitMix64(seed: seed)
    }

    /// - Parameters:
    ///   - isEligible: whether member `i` may be picked now.
    ///   - inFlight: requests now in flight on member `i`.
    public mutating func next(isEligible: (Int) -> Bool = { _ in true }, inFlight: (Int) -> Int) -> Int? {
        var total = 0
        for i in 0..<weights.count where weights[i] > 0 && isEligible(i) { total += weights[i] }
        guard total > 0 else { return nil }
        let a = draw(total: total, isEligible: isEligible)
        var b = draw(total: total, isEligible: isEligible)
        if b == a {
            b = draw(total: total, isEligible: isEligible)
        }
        guard a != b else { return a }
        // Compare inFlight(a)/w(a) with inFlight(b)/w(b) without division.
        let la = inFlight(a) * weights[b]
        let lb = inFlight(b) * weights[a]
        if la != lb { return la < lb ? a : b }
        return weights[a] >= weights[b] ? a : b
    }

    private mutating func draw(total: Int, isEligible: (Int) -> Bool) -> Int {
        var r = Int(rng.next() % UInt64(total))
        for i in 0..<weights.count where weights[i] > 0 && isEligible(i) {
            if r < weights[i] { return i }
            r -= weights[i]
        }
        preconditionFailure("draw fell off the end: total \(total)")
    }
}

/// A small, fast, seedable generator (Steele, Lea, Flood 2014). Not for secrets.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

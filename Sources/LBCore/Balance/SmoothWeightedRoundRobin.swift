// Smooth weighted round robin (as in nginx's upstream module): every pick adds each eligible
// member's weight to its running score, takes the highest score and subtracts the eligible total
// from it. Over any window of `sum(weights)` picks each member is chosen exactly `weight` times,
// spread out rather than in bursts, which is what makes canary shares exact.
// Pure value type: worker-local, no clock, no locks.

/// Deterministic weighted rotation over members `0..<weights.count`.
public struct SmoothWeightedRoundRobin: Sendable {
    public private(set) var weights: [Int]
    private var scores: [Int]

    /// `weights` may contain zeros (never picked). Negative weights are treated as zero.
    public init(weights: [Int]) {
        self.weights = weights.map { max(0, $0) }
        self.scores = Array(repeating: 0, count: weights.count)
    }

    /// The next member among those `isEligible` accepts, or nil when no eligible member has weight.
    public mutating func next(isEligible: (Int) -> Bool = { _ in true }) -> Int? {
        var best = -1
        var total = 0
        for i in 0..<weights.count {
            let w = weights[i]
            guard w > 0, isEligible(i) else { continue }
            scores[i] &+= w
            total &+= w
            if best < 0 || scores[i] > scores[best] { best = i }
        }
        guard best >= 0 else { return nil }
        scores[best] &-= total
        return best
    }
}

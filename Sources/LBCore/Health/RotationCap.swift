// The safety cap on how much of a group health logic may take out of rotation at once.
//
// Active checks and outlier ejection judge each backend alone. When many fail together the cause
// is rarely the backends: more often it is the checker's own network, a shared dependency, or a
// load spike that ejection would only make worse by piling the traffic onto fewer members.
// Flickr's Apollo (`threshold_down`) and Envoy (panic threshold) therefore refuse to take more
// than a fixed share of a group out. Here: at most floor(count × max_unhealthy) members are out;
// the rest of those that want out stay in, least bad first, and the group is reported `capped`.
//
// Which members stay is decided by `badness` alone (and a fixed tie-break), so the decision is a
// pure function of its input: recomputing it every tick never flaps between equally bad members.
// No state, no clock. Called by the control loop for each group after every health change.

/// The safety cap (Apollo's threshold_down, Envoy's panic threshold): at most `maxUnhealthy` of a
/// group may be out of rotation.
public enum RotationCap {
    /// One member of a group, as health logic sees it.
    public struct Candidate: Sendable, Equatable {
        /// The member's identity; unique within the group.
        public var id: Int
        /// Failing active checks or ejected.
        public var wantsOut: Bool
        /// How bad it is, larger is worse (e.g. consecutive failures, or a big number for "down by
        /// active checks" plus failures). Ties are broken by id: the lower id stays in first, so
        /// among equally bad members the higher ids go out.
        public var badness: Int

        /// A member that does (`wantsOut`) or does not want to leave rotation.
        public init(id: Int, wantsOut: Bool, badness: Int) {
            self.id = id
            self.wantsOut = wantsOut
            self.badness = badness
        }
    }

    /// Which members are out of rotation, and whether the cap held some back.
    public struct Decision: Sendable, Equatable {
        /// Ids out of rotation; always a subset of those that want out.
        public var out: Set<Int>
        /// More wanted out than allowed: some unhealthy members stay in rotation.
        public var capped: Bool

        /// A decision; normally made by `RotationCap.decide(_:maxUnhealthy:)`.
        public init(out: Set<Int>, capped: Bool) {
            self.out = out
            self.capped = capped
        }
    }

    /// At most floor(count * maxUnhealthy) members out (maxUnhealthy in basis points,
    /// 0...10000); when more want out, the WORST (highest badness) are taken out and the least bad
    /// stay in. A group of 1 with maxUnhealthy < 100% can never be emptied. maxUnhealthy 10000
    /// (100%) allows all out.
    ///
    /// Shares outside 0...10000 are clamped into it. Among equal badness the lower id stays in.
    /// Ids are expected to be unique; duplicates collapse in `out`.
    public static func decide(_ candidates: [Candidate], maxUnhealthy: Share) -> Decision {
        let wanting = candidates.filter(\.wantsOut)
        let allowed = limit(members: candidates.count, maxUnhealthy: maxUnhealthy)
        guard wanting.count > allowed else {
            return Decision(out: Set(wanting.map(\.id)), capped: false)
        }
        let worstFirst = wanting.sorted(by: isWorse)
        return Decision(out: Set(worstFirst.prefix(allowed).map(\.id)), capped: true)
    }

    /// How many of `members` may be out of rotation at once: floor(members × maxUnhealthy), with
    /// the share clamped to 0...10000 basis points, but at least one in a group of two or more
    /// when the share is above 0 (as Envoy ejects at least one host whatever its percentage): a
    /// single dead backend among three must be able to leave at 30%. Never equals `members` below
    /// 100% (for `members >= 1`), so no group is emptied by health logic. Exact and overflow-free for any
    /// non-negative `members`; negative counts give 0.
    ///
    /// Discovery uses the same limit for how many members one update may remove.
    public static func limit(members: Int, maxUnhealthy: Share) -> Int {
        guard members > 0 else { return 0 }
        let bp = min(max(maxUnhealthy.basisPoints, 0), 10_000)
        // floor(m × bp / 10000) with m = q × 10000 + r, without forming m × bp.
        let (q, r) = members.quotientAndRemainder(dividingBy: 10_000)
        let floor = q * bp + r * bp / 10_000
        return floor == 0 && members >= 2 && bp > 0 ? 1 : floor
    }

    /// Strict order putting the member that should go out first in front: higher badness, then
    /// (for equal badness) higher id, so the lower id stays in.
    private static func isWorse(_ a: Candidate, _ b: Candidate) -> Bool {
        if a.badness != b.badness { return a.badness > b.badness }
        return a.id > b.id
    }
}

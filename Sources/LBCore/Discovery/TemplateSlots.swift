// A discovery template: a fixed number of slots holding the records of one SRV group.
//
// DESIGN.md section 4: a backend's identity is (SRV target, port), so a reordered or shuffled
// answer changes nothing (consul-dns.md §2 item 5); a record missing from an answer leaves rotation
// but keeps its slot for `hold`, so it returns to the same slot if it comes back; a new record takes
// a free slot, or reclaims the slot of the record absent longest (the Reaper case: every instance
// replaced by a new one, item 6); with neither it overflows, counted and reported, never silently
// dropped (item 21). Removal is capped against a shrinking pool, not against churn: an answer may
// not bring the present count below the largest present count of the last `hold` less
// `maxRemoval` of it (item 2: an answer listing 6 of 10 removes 3, the 4th stays `deferred` until
// the window moves on); a rolling replacement, where new records arrive as old ones go, is not
// held back.
// Pure value type: no clock reads, no I/O.

/// Identity of a discovered backend: the SRV target (lowercased FQDN text) and port.
struct TemplateKey: Hashable, Sendable, Comparable {
    var target: String
    var port: UInt16

    static func < (a: TemplateKey, b: TemplateKey) -> Bool {
        (a.target, a.port) < (b.target, b.port)
    }
}

/// One SRV record with its resolved address.
struct TemplateRecord: Sendable, Equatable {
    var key: TemplateKey
    var address: SocketAddress
    var weight: Int
    var priority: Int
}

struct TemplateSlots: Sendable {
    enum Presence: Sendable, Equatable {
        case present
        /// Missing from answers since then; freed once `hold` has passed.
        case absent(since: MonotonicInstant)
    }

    struct Slot: Sendable, Equatable {
        let index: Int
        var record: TemplateRecord
        var presence: Presence
    }

    /// What one answer did, by key.
    struct Change: Sendable, Equatable {
        /// Took a slot (free or reclaimed).
        var added: [TemplateKey] = []
        /// Same key, new address, weight or priority.
        var updated: [TemplateKey] = []
        /// Was absent (still holding its slot) and is listed again.
        var returned: [TemplateKey] = []
        /// Present before, missing now: out of rotation, slot held.
        var absent: [TemplateKey] = []
        /// Missing, but kept present by the removal cap.
        var deferred: [TemplateKey] = []
        /// Slot released: reclaimed by a new record.
        var freed: [TemplateKey] = []
        /// Found no slot.
        var overflow: [TemplateKey] = []

        /// True when the present set (or a present record) did not change.
        var isEmpty: Bool { added.isEmpty && updated.isEmpty && returned.isEmpty && absent.isEmpty }
    }

    /// Slots in index order; nil = free. Always `capacity` long.
    private(set) var slots: [Slot?]
    /// Records that found no slot, summed over all answers (a metric).
    private(set) var overflowTotal = 0
    let hold: Duration
    let maxRemoval: Share
    /// Present counts after recent answers, for the removal cap's reference (pruned to `hold`).
    private var recent: [(at: MonotonicInstant, present: Int)] = []

    init(capacity: Int, hold: Duration, maxRemoval: Share) {
        slots = Array(repeating: nil, count: max(0, capacity))
        self.hold = hold
        self.maxRemoval = maxRemoval
    }

    /// A table holding a persisted last-good set, all present, each in its saved slot when that is
    /// free and in range, otherwise in the lowest free one (or overflowing).
    init(capacity: Int, hold: Duration, maxRemoval: Share, restoring: [(index: Int, record: TemplateRecord)]) {
        self.init(capacity: capacity, hold: hold, maxRemoval: maxRemoval)
        var seen: Set<TemplateKey> = []
        var homeless: [TemplateRecord] = []
        for (index, record) in restoring where seen.insert(record.key).inserted {
            if slots.indices.contains(index) && slots[index] == nil {
                slots[index] = Slot(index: index, record: record, presence: .present)
            } else {
                homeless.append(record)
            }
        }
        for record in homeless {
            if let free = slots.firstIndex(where: { $0 == nil }) {
                slots[free] = Slot(index: free, record: record, presence: .present)
            } else {
                overflowTotal += 1
            }
        }
    }

    /// Present records, in slot order: what the group routes to.
    var present: [Slot] { slots.compactMap { $0 }.filter { $0.presence == .present } }

    /// The earliest instant at which `expire` frees a slot.
    var nextExpiry: MonotonicInstant? {
        slots.compactMap { slot -> MonotonicInstant? in
            guard case .absent(let since)? = slot?.presence else { return nil }
            return since + hold
        }.min()
    }

    /// Applies one successful, non-empty answer (failures never get here).
    mutating func apply(_ records: [TemplateRecord], now: MonotonicInstant) -> Change {
        var change = Change()
        var listed: [TemplateKey: TemplateRecord] = [:]
        for r in records where listed[r.key] == nil { listed[r.key] = r }
        var slotOf: [TemplateKey: Int] = [:]
        for case let slot? in slots { slotOf[slot.record.key] = slot.index }

        // Listed keys that hold a slot keep it.
        for (key, record) in listed {
            guard let i = slotOf[key], var slot = slots[i] else { continue }
            if slot.presence != .present {
                slot.presence = .present
                change.returned.append(key)
            }
            if slot.record != record {
                slot.record = record
                change.updated.append(key)
            }
            slots[i] = slot
        }

        // Present keys missing from the answer go absent while the present count after this
        // answer (counting the new records that will find a slot) stays at or above the floor:
        // the largest recent present count less `maxRemoval` of it. Deterministic: by key.
        recent.removeAll { now - $0.at > hold }
        let missing = slots.compactMap { $0 }
            .filter { $0.presence == .present && listed[$0.record.key] == nil }
            .sorted { $0.record.key < $1.record.key }
        let newKeys = listed.keys.filter { slotOf[$0] == nil }.sorted()
        let listedHeld = listed.count - newKeys.count
        let reference = max(listedHeld + missing.count, recent.map(\.present).max() ?? 0)
        let floor = reference - Self.removalLimit(occupied: reference, maxRemoval: maxRemoval)
        func presentAfter(removing a: Int) -> Int {
            let kept = missing.count - a
            return listedHeld + kept + min(newKeys.count, max(0, slots.count - listedHeld - kept))
        }
        var removable = missing.count
        while removable > 0 && presentAfter(removing: removable) < floor { removable -= 1 }
        for (n, slot) in missing.enumerated() {
            if n < removable {
                slots[slot.index]?.presence = .absent(since: now)
                change.absent.append(slot.record.key)
            } else {
                change.deferred.append(slot.record.key)
            }
        }

        // New keys take free slots, then the slots of the records absent longest.
        for key in newKeys {
            guard let record = listed[key] else { continue }
            if let free = slots.firstIndex(where: { $0 == nil }) {
                slots[free] = Slot(index: free, record: record, presence: .present)
                change.added.append(key)
            } else if let oldest = oldestAbsent() {
                if let gone = slots[oldest]?.record.key { change.freed.append(gone) }
                slots[oldest] = Slot(index: oldest, record: record, presence: .present)
                change.added.append(key)
            } else {
                change.overflow.append(key)
                overflowTotal += 1
            }
        }
        let presentCount = present.count
        recent.append((now, presentCount))
        return change
    }

    /// Frees the slots of records absent for `hold` or longer; returns their keys.
    mutating func expire(now: MonotonicInstant) -> [TemplateKey] {
        var freed: [TemplateKey] = []
        for i in slots.indices {
            guard let slot = slots[i], case .absent(let since) = slot.presence, now - since >= hold else { continue }
            freed.append(slot.record.key)
            slots[i] = nil
        }
        return freed
    }

    /// How many of `occupied` may go: floor(maxRemoval × occupied), but at least one when two or
    /// more are present and the cap is not 0% (as `RotationCap`): a group of two must be able to
    /// lose one.
    static func removalLimit(occupied: Int, maxRemoval: Share) -> Int {
        let limit = maxRemoval.basisPoints * occupied / 10_000
        return occupied >= 2 && maxRemoval.basisPoints > 0 ? max(1, limit) : limit
    }

    private func oldestAbsent() -> Int? {
        var best: (index: Int, since: MonotonicInstant)?
        for case let slot? in slots {
            guard case .absent(let since) = slot.presence else { continue }
            if best.map({ since < $0.since }) ?? true { best = (slot.index, since) }
        }
        return best?.index
    }
}

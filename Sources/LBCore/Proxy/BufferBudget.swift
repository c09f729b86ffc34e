// The memory all connections together may hold in lbd's buffers (`limits.max_buffer_total`,
// bad-inputs.md R5). `max_buffer` bounds one connection; this bounds their sum, which otherwise
// grows with maxconn (10,000 slow uploads × 2 × 256 KiB is 5 GiB).
//
// Each worker gets an even share. A session reports the bytes its buffers hold after every
// event; while the worker is over its share, sessions stop reading from either side. What they
// hold still goes out to the peers, which brings the total down, and below 7/8 of the share the
// paused sessions are woken. A squeeze that lasts is ended by the sessions' own deadlines; a
// request body that stalls while lbd is squeezed is answered 503, not the client's 408.

/// Process-wide figures for /metrics.
final class BufferStats: Sendable {
    /// Bytes held in connection buffers, all workers.
    let held = Counter()
    /// Times a session stopped reading because its worker was over its share.
    let pauses = Counter()
    /// Request bodies answered 503 because they stalled while their worker was over its share.
    let squeezed = Counter()
    let limit: Int
    init(limit: Int) { self.limit = limit }
}

/// One worker's share. Worker thread only.
final class BufferBudget {
    let limit: Int
    private let stats: BufferStats
    private var used = 0
    private var paused: [ObjectIdentifier: any Session] = [:]

    init(limit: Int, stats: BufferStats) {
        self.limit = max(1, limit)
        self.stats = stats
    }

    var isOver: Bool { used >= limit }

    /// Moves a session's last report `held` to `now`. The session calls `wakeIfRoom` once it has
    /// set its own interest (waking runs other sessions, and maybe this one again).
    func report(_ held: inout Int, _ now: Int) {
        guard now != held else { return }
        used += now - held
        stats.held.add(now - held)
        held = now
    }

    /// Wakes the paused sessions once the total is below 7/8 of the share.
    func wakeIfRoom() {
        if !paused.isEmpty, used < limit - limit / 8 { wakeAll() }
    }

    /// `session` stopped reading for the budget; it is told (`budgetFreed`) when there is room.
    func pause(_ session: any Session) {
        if paused.updateValue(session, forKey: ObjectIdentifier(session)) == nil { stats.pauses.add(1) }
    }

    func forget(_ session: any Session) {
        paused.removeValue(forKey: ObjectIdentifier(session))
    }


    private func wakeAll() {
        let sessions = paused
        paused = [:]
        for s in sessions.values { s.budgetFreed() }
    }
}

// One SRV group's discovery, on the control loop: resolve the group's SRV name through its
// resolver, look up addresses the answer's additional section did not carry, turn the result into
// template records and feed them to `TemplateSlots`; report changes to the owner, which updates
// the health monitor (and so the published snapshot) and the state file.
//
// Failure policy (issue 3, consul-dns.md §2 items 1, 2, 4, 19): a timeout, SERVFAIL, REFUSED,
// FORMERR, a malformed reply or an empty answer (NXDOMAIN, NODATA, or only unusable records) never
// reaches the slots: the last good set keeps serving, `staleSince` records since when, and the
// name is tried again after the resolver's interval. Truncated answers never get here either: the
// query machine repeats them over TCP.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import DNSResolver
import Logging

final class SRVGroupDiscovery {
    let pool: Int
    /// Index in the pool's groups; a reload may move it.
    var group: Int
    let poolName: String
    let groupName: String
    let srvName: String
    let resolver: ResolverConfig
    private let client: DNSClient
    private let logger: Logger
    private(set) var slots: TemplateSlots
    private var timer: OpaquePointer?
    private var queries: [DNSQueryHandle] = []
    /// Address lookups still running for the current resolution, and what they found.
    private var pendingLookups = 0
    private var lookedUp: [DNSName: [DNSAddress]] = [:]
    private var lookupTTL: UInt32 = .max
    private var answer: (targets: [SRVTarget], ttl: UInt32)?
    private var jitter = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
    // State and counters kept for the operations issue's API and /metrics (staleness gauge,
    // resolutions and failures); logged meanwhile.
    /// When the last resolution succeeded; nil before the first.
    private(set) var lastSuccess: MonotonicInstant?
    /// Since when resolutions fail (nil while they succeed): the last good set is stale.
    private(set) var staleSince: MonotonicInstant?
    private(set) var lastFailure = ""
    private(set) var resolutions = 0
    private(set) var failures = 0
    private var lastFailureLog = MonotonicInstant(nanoseconds: 0)
    private var warnedLarge = false
    /// Called after the present set (or a weight, priority or address in it) changed.
    var onChange: ((SRVGroupDiscovery) -> Void)?

    init(
        pool: Int, group: Int, poolName: String, groupName: String, srvName: String, slots: Int,
        maxRemoval: Share, resolver: ResolverConfig, client: DNSClient, logger: Logger,
        restoring: [(index: Int, record: TemplateRecord)]
    ) {
        self.pool = pool
        self.group = group
        self.poolName = poolName
        self.groupName = groupName
        self.srvName = srvName
        self.resolver = resolver
        self.client = client
        self.logger = logger
        self.slots = TemplateSlots(capacity: slots, hold: resolver.hold, maxRemoval: maxRemoval, restoring: restoring)
        if !restoring.isEmpty {
            // Until DNS answers, the restored set is as stale as the file it came from.
            staleSince = MonotonicInstant(nanoseconds: monotonicNanos())
        }
    }

    deinit {
        stop()
        if let t = timer { event_free(t) }
    }

    /// Present records in slot order: what the group routes to.
    var records: [TemplateRecord] { slots.present.map(\.record) }

    /// Resolves now, then keeps re-resolving on the records' TTL.
    func start(base: OpaquePointer) {
        timer = event_new(base, -1, 0, SRVGroupDiscovery.onTimer, Unmanaged.passUnretained(self).toOpaque())
        resolve()
    }

    func stop() {
        for q in queries { q.cancel() }
        queries.removeAll()
        if let t = timer { event_del(t) }
    }

    private static let onTimer: event_callback_fn = { _, _, ctx in
        Unmanaged<SRVGroupDiscovery>.fromOpaque(ctx!).takeUnretainedValue().resolve()
    }

    private var settings: DNSQuery.Settings {
        DNSQuery.Settings(nameservers: resolver.nameservers.count, timeout: resolver.timeout)
    }

    private func resolve() {
        guard queries.isEmpty else { return }
        guard let name = DNSName(srvName) else {
            failed("not a DNS name")
            return
        }
        resolutions += 1
        answer = nil
        lookedUp = [:]
        pendingLookups = 0
        lookupTTL = .max
        let question = DNSQuestion(name: name, type: DNSRecordType.srv.rawValue)
        let handle = client.resolve(question, settings: settings) { [unowned self] result in
            self.queries.removeAll()
            self.srvAnswered(result, question: question)
        }
        queries.append(handle)
    }

    private func srvAnswered(_ result: DNSQueryResult, question: DNSQuestion) {
        switch result {
        case .failure(let failure):
            failed("\(failure)")
        case .answer(let message):
            let extracted = SRVAnswer.extract(from: message, question: question)
            answer = (extracted.targets, extracted.ttl)
            // Targets without an address in the additional section: ask for A and AAAA.
            for name in extracted.unresolved {
                for type in [DNSRecordType.a, DNSRecordType.aaaa] {
                    pendingLookups += 1
                    let q = DNSQuestion(name: name, type: type.rawValue)
                    let handle = client.resolve(q, settings: settings) { [unowned self] result in
                        self.addressAnswered(result, question: q)
                    }
                    queries.append(handle)
                }
            }
            if pendingLookups == 0 { complete() }
        }
    }

    private func addressAnswered(_ result: DNSQueryResult, question: DNSQuestion) {
        if case .answer(let message) = result {
            let found = AddressAnswer.extract(from: message, question: question)
            lookedUp[question.name, default: []].append(contentsOf: found.addresses)
            lookupTTL = min(lookupTTL, found.ttl)
        }
        pendingLookups -= 1
        if pendingLookups == 0 {
            queries.removeAll()
            complete()
        }
    }

    /// All answers are in: build records, apply them, schedule the next resolution.
    private func complete() {
        guard let answer else { return }
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        var records: [TemplateRecord] = []
        for t in answer.targets {
            let addresses = t.addresses.isEmpty ? (lookedUp[t.target] ?? []) : t.addresses
            guard let address = pick(addresses) else { continue }
            records.append(
                TemplateRecord(
                    key: TemplateKey(target: t.target.description, port: t.port),
                    address: SocketAddress(host: address.description, port: t.port),
                    weight: Int(t.weight), priority: Int(t.priority)))
        }
        guard !records.isEmpty else {
            failed("no usable records in the answer")
            return
        }
        if records.count > 500 && !warnedLarge {
            warnedLarge = true
            logger.warning(
                "large SRV answer: more than 500 instances; Consul may not return all of them",
                metadata: meta(["records": "\(records.count)"]))
        }
        if let since = staleSince {
            logger.notice(
                "discovery recovered", metadata: meta(["stale_ms": "\((now - since).milliseconds)", "records": "\(records.count)"]))
        }
        staleSince = nil
        lastSuccess = now
        let expired = slots.expire(now: now)
        let change = slots.apply(records, now: now)
        log(change, freed: expired)
        if !change.isEmpty { onChange?(self) }
        schedule(ttl: min(answer.ttl, lookupTTL))
    }

    /// The address of the preferred family, else of the other; the lowest in text order, so the
    /// choice is the same on every resolution.
    private func pick(_ addresses: [DNSAddress]) -> DNSAddress? {
        let preferV6 = resolver.family == .ipv6
        let sorted = addresses.sorted { $0.description < $1.description }
        return sorted.first { $0.isIPv6 == preferV6 } ?? sorted.first
    }

    private func failed(_ reason: String) {
        let now = MonotonicInstant(nanoseconds: monotonicNanos())
        failures += 1
        lastFailure = reason
        for q in queries { q.cancel() }
        queries.removeAll()
        let first = staleSince == nil
        if first { staleSince = now }
        // One line when it starts, then one a minute while it lasts.
        if first || now - lastFailureLog >= .seconds(60) {
            lastFailureLog = now
            logger.warning(
                "discovery failed; keeping the last good set",
                metadata: meta([
                    "reason": "\(reason)", "members": "\(slots.present.count)",
                    "stale_ms": "\((now - (staleSince ?? now)).milliseconds)",
                ]))
        }
        schedule(ttl: 0)
    }

    /// Next resolution after max(TTL, interval), plus up to 10% jitter so groups spread out.
    private func schedule(ttl: UInt32) {
        guard let timer else { return }
        let floor = MonotonicInstant.nanoseconds(of: resolver.interval)
        let base = max(UInt64(ttl) * 1_000_000_000, floor)
        let delay = base + jitter.next() % (base / 10 + 1)
        var tv = Duration.nanoseconds(Int64(clamping: delay)).timeval
        event_add(timer, &tv)
    }

    private func log(_ change: TemplateSlots.Change, freed: [TemplateKey]) {
        func names(_ keys: [TemplateKey]) -> String { keys.map { "\($0.target):\($0.port)" }.joined(separator: ",") }
        if !change.added.isEmpty || !change.returned.isEmpty {
            logger.notice(
                "discovery added backends",
                metadata: meta(["added": "\(names(change.added + change.returned))", "members": "\(slots.present.count)"]))
        }
        if !change.absent.isEmpty {
            logger.notice(
                "discovery removed backends",
                metadata: meta(["removed": "\(names(change.absent))", "members": "\(slots.present.count)"]))
        }
        if !change.deferred.isEmpty {
            logger.warning(
                "discovery removal capped: records missing from the answer stay until more may go",
                metadata: meta(["deferred": "\(names(change.deferred))", "members": "\(slots.present.count)"]))
        }
        if !change.overflow.isEmpty {
            logger.error(
                "discovery overflow: more records than slots",
                metadata: meta([
                    "dropped": "\(names(change.overflow))", "slots": "\(slots.slots.count)",
                    "overflow_total": "\(slots.overflowTotal)",
                ]))
        }
        if !change.updated.isEmpty {
            logger.info("discovery updated backends", metadata: meta(["updated": "\(names(change.updated))"]))
        }
        let allFreed = freed + change.freed
        if !allFreed.isEmpty {
            logger.info("discovery freed slots", metadata: meta(["freed": "\(names(allFreed))"]))
        }
    }

    private func meta(_ extra: Logger.Metadata) -> Logger.Metadata {
        extra.merging(["pool": "\(poolName)", "group": "\(groupName)", "srv": "\(srvName)"]) { a, _ in a }
    }
}

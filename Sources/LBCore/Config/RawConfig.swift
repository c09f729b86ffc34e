// Decoded-but-unchecked configuration: the YAML tree read into structs with the file's shape.
//
// Stage one of two (see STYLE.md section 7). `RawConfigDecoder` fills these from a `Yams.Node`
// and reports what is wrong with the *shape*: unknown or duplicate keys, a list where a mapping
// belongs, `abc` where an integer belongs, a missing required key, both or neither of two
// alternatives. Stage two, `ConfigValidator`, turns them into `LBConfig` and reports what is wrong
// with the *values*: ranges, formats, names, cross-references, sums.
//
// A field is nil when the key is absent, null (`key:` or `key: ~`), or of the wrong shape; in the
// last case, and for a missing required key, the decoder has already reported it, so the validator
// treats nil as "use the default" or "skip", never as a new problem.
//
// Durations, addresses and shares stay as text here: their syntax is a value rule, checked once in
// the validator with messages that quote the text. Mappings whose keys are names (`pools`, `groups`,
// `resolvers`) are kept as arrays of `RawEntry` in file order; a Swift `Dictionary` would lose it.

/// One entry of a mapping whose keys are names, kept in file order.
struct RawEntry<Value> {
    var name: String
    var value: Value
}

/// The whole file (top-level keys).
struct RawConfig {
    /// `workers`
    var workers: Int?
    /// `admin`
    var admin: RawAdmin?
    /// `state_file`
    var stateFile: String?
    /// `resolvers`, in file order; nil if it is not a mapping (already reported).
    var resolvers: [RawEntry<RawResolver>]? = []
    /// `timeouts`
    var timeouts = RawTimeouts()
    /// `limits`
    var limits = RawLimits()
    /// `log`
    var log = RawLog()
    /// `pools`, in file order; nil when the key is missing or not a mapping (already reported).
    var pools: [RawEntry<RawPool>]?
    /// `listeners`, in file order; nil when the key is missing (already reported). A malformed item
    /// has nil fields and keeps its place, so later paths keep their index.
    var listeners: [RawListener]?
    /// `failover`
    var failover: RawFailover?
}

/// `admin: { listen, token_file }`
struct RawAdmin {
    var listen: String?
    var tokenFile: String?
}

/// `resolvers.NAME: { nameservers, interval, timeout, hold, family }`
struct RawResolver {
    /// Address texts in file order, nil for an item of the wrong shape; the list is nil if the key
    /// is missing (all already reported).
    var nameservers: [String?]?
    var interval: String?
    var timeout: String?
    var hold: String?
    var family: String?
}

/// `timeouts: { ... }`, every value a duration text.
struct RawTimeouts {
    var clientHead: String?
    var clientIdle: String?
    var clientWrite: String?
    var clientBody: String?
    var backendConnect: String?
    var backendResponse: String?
    var backendIdle: String?
    var tcpIdle: String?
    var shutdownGrace: String?
}

/// `limits: { ... }`
struct RawLimits {
    var maxRequestLine: Int?
    var maxHeaderBytes: Int?
    var maxHeaderCount: Int?
    var maxChunkExtension: Int?
    var maxPipelineDepth: Int?
    var maxBuffer: Int?
    var maxBufferTotal: Int?
}

/// `log: { level, access_log }`
struct RawLog {
    var level: String?
    var accessLog: Bool?
}

/// `pools.NAME: { balance, max_unhealthy, retries, groups, health }`
struct RawPool {
    var balance: String?
    /// Share text, `30%` or `30`.
    var maxUnhealthy: String?
    var retries: Int?
    /// In file order; nil if the key is missing or not a mapping (already reported).
    var groups: [RawEntry<RawGroup>]?
    var health: RawHealth?
    var passive: RawPassive?
    var slowStart: String?
    /// Share text, `20%`.
    var retryBudget: String?
    var hooks: RawHooks?
}

/// `pools.NAME.hooks: { command, min_interval }`
struct RawHooks {
    var command: String?
    var minInterval: String?
}

/// `pools.NAME.passive: { failures, ejection, max_ejection, backoff, reset_after, on_5xx }`
struct RawPassive {
    var failures: Int?
    var ejection: String?
    var maxEjection: String?
    var backoff: String?
    var resetAfter: String?
    var on5xx: Bool?
}

/// `pools.NAME.groups.NAME: { share, static | srv + resolver + slots }`
struct RawGroup {
    /// Share text, `95`, `5.5` or `5%`; nil if missing (already reported).
    var share: String?
    /// Nil if the source was missing, ambiguous or malformed (already reported).
    var source: RawGroupSource?
    var tls: RawBackendTLS?
}

/// `groups.G.tls: { ca_file, server_name, verify, cert, key }`
struct RawBackendTLS {
    var caFile: String?
    var serverName: String?
    var verify: Bool?
    var cert: String?
    var key: String?
}

/// Exactly one of `static` or `srv`; the decoder reports both-or-neither.
enum RawGroupSource {
    /// `static: [ADDRESS | {address, weight}, ...]`; a malformed entry has a nil address (already
    /// reported) and keeps its place, so later paths keep their index.
    case staticBackends([RawBackend])
    /// `srv: NAME` with `resolver` (required) and `slots` (optional).
    case srv(name: String, resolver: String?, slots: Int?)
}

/// One `static` entry: a bare address text or `{address, weight}`.
struct RawBackend {
    var address: String?
    var weight: Int?
    /// True for the bare `127.0.0.1:9001` form, whose address path is the entry itself.
    var isBareAddress: Bool
}

/// `pools.NAME.health: { http: {path, expect} | tcp: {}, interval, timeout, rise, fall }`
struct RawHealth {
    /// Nil if missing, ambiguous or malformed (already reported).
    var check: RawHealthCheck?
    var interval: String?
    var timeout: String?
    var rise: Int?
    var fall: Int?
}

/// Exactly one of `http` or `tcp`.
enum RawHealthCheck {
    case tcp
    case http(path: String?, expect: Int?)
}

/// `listeners[i]: { name, bind, mode, pool, maxconn }`
struct RawListener {
    var name: String?
    var bind: String?
    var mode: String?
    var pool: String?
    var maxconn: Int?
    /// `tls.certificates`: (cert, key) texts, nil for a malformed item (already reported); the
    /// list is nil without `tls`.
    var certificates: [(cert: String?, key: String?)?]?
    /// `tls.ticket_key_lifetime`.
    var ticketKeyLifetime: String?
    /// `tls.ciphersuites`, `tls.ciphers`, `tls.session_tickets`.
    var ciphersuites: String?
    var ciphers: String?
    var sessionTickets: Int?
}

/// `failover: { vrrp: {...} }`
struct RawFailover {
    var vrrp: RawVRRP?
}

/// `failover.vrrp: { interface, vrid, priority, advert_interval, virtual_ips, preempt, preempt_delay,
/// unicast_peers, checksum, track, peer_sync }`
struct RawVRRP {
    var interface: String?
    var vrid: Int?
    var priority: Int?
    var advertInterval: String?
    /// `10.0.0.100/24` texts in file order; nil items were of the wrong shape (already reported).
    var virtualIPs: [String?]?
    var preempt: Bool?
    var preemptDelay: String?
    var unicastPeers: [String?]?
    var checksum: String?
    var track: [RawTrack] = []
    var peerSync: RawPeerSync?
}

/// `failover.vrrp.track[i]: { pool, min_healthy, weight }`
struct RawTrack {
    var pool: String?
    var minHealthy: Int?
    var weight: Int?
}

/// `failover.vrrp.peer_sync: { listen, peer, key_file }`
struct RawPeerSync {
    var listen: String?
    var peer: String?
    var keyFile: String?
}

// Validated configuration: every field typed and non-optional where it has a default.
// Produced only by `ConfigLoader` (Raw… types decoded from YAML, then validated); the engine never
// sees unchecked input. All types are immutable values, safe to hand to any thread.

/// An IPv4 or IPv6 address and port, as written in the config (`127.0.0.1:9001`, `[::1]:80`).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// Numeric host: dotted IPv4 or IPv6 text without brackets. Names are not resolved here.
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
    public var isIPv6: Bool { host.contains(":") }
    /// `host:port`, with brackets around IPv6 hosts.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A traffic share in hundredths of a percent: 0...10_000 (100%).
public struct Share: Sendable, Hashable, Comparable {
    public var basisPoints: Int
    public init(basisPoints: Int) { self.basisPoints = basisPoints }
    public static func < (a: Share, b: Share) -> Bool { a.basisPoints < b.basisPoints }
}

public enum BalanceAlgorithm: String, Sendable, Hashable {
    case roundRobin = "round_robin"
    case leastLoaded = "least_loaded"
}

public struct BackendConfig: Sendable, Hashable {
    public var address: SocketAddress
    /// 1...256.
    public var weight: Int
    public init(address: SocketAddress, weight: Int) {
        self.address = address
        self.weight = weight
    }
}

public enum GroupSource: Sendable, Hashable {
    case staticBackends([BackendConfig])
    /// A Consul SRV name resolved through the named resolver into a template of `slots` slots.
    case srv(name: String, resolver: String, slots: Int)
}

public struct GroupConfig: Sendable, Hashable {
    public var name: String
    public var share: Share
    public var source: GroupSource
    /// TLS to this group's backends (traffic and health checks); nil: plain.
    public var tls: BackendTLSConfig? = nil
}

/// `pools.P.groups.G.tls: { ca_file, server_name, verify, cert, key }`.
public struct BackendTLSConfig: Sendable, Hashable {
    /// PEM CA certificates to verify backends against; nil: the system's default CA store.
    public var caFile: String?
    /// The name sent as SNI and checked against the certificate; nil: the backend's address
    /// (checked as an IP address).
    public var serverName: String?
    /// Verify the backend's certificate chain and name (true).
    public var verify: Bool = true
    /// A client certificate and key for backends that ask for one.
    public var cert: String?
    public var key: String?
}

public struct HealthConfig: Sendable, Hashable {
    public enum Check: Sendable, Hashable {
        case tcp
        case http(path: String, expect: Int)
    }
    public var check: Check
    public var interval: Duration
    public var timeout: Duration
    public var rise: Int
    public var fall: Int
}

public struct PoolConfig: Sendable, Hashable {
    public var name: String
    public var balance: BalanceAlgorithm
    /// Fraction of a pool that health and discovery may take out at once, in basis points.
    public var maxUnhealthy: Share
    /// Extra attempts on other backends after a connect failure (0...10).
    public var retries: Int
    /// In the order written in the file.
    public var groups: [GroupConfig]
    public var health: HealthConfig?
    /// Ejection from live traffic (always on; these are the defaults).
    public var passive = PassiveConfig()
    /// A backend coming (back) up ramps from 10% of its weight to all of it over this; 0 = off.
    public var slowStart: Duration = .zero
    /// Retries in flight may be at most this share of requests in flight (at least 10).
    public var retryBudget = Share(basisPoints: 2000)
    /// A command run on health changes of the pool.
    public var hooks: HookConfig?
}

/// `pools.NAME.hooks: { command, min_interval }`.
public struct HookConfig: Sendable, Hashable {
    /// Run with /bin/sh -c; the pool's state is in LBD_* environment variables.
    public var command: String
    /// At most one run per this interval; changes in between are folded into one later run.
    public var minInterval: Duration
}

/// `pools.NAME.passive`: outlier ejection from live traffic. A connect failure ejects at once;
/// resets and EOFs before a response (and 5xx with `on_5xx`) count towards `failures`.
public struct PassiveConfig: Sendable, Hashable {
    public enum Backoff: String, Sendable, Hashable, CaseIterable {
        case constant
        case exponential
        case fibonacci
    }
    /// Consecutive failures that eject (1...100).
    public var failures: Int = 3
    /// First ejection's length.
    public var ejection: Duration = .seconds(5)
    /// Longest ejection.
    public var maxEjection: Duration = .seconds(60)
    public var backoff: Backoff = .exponential
    /// This long without an ejection resets the backoff.
    public var resetAfter: Duration = .seconds(60)
    /// Whether 5xx responses count as failures.
    public var on5xx = false
    public init() {}
}

public enum ListenerMode: String, Sendable, Hashable {
    case http
    case tcp
}

public struct ListenerConfig: Sendable, Hashable {
    public var name: String
    public var bind: SocketAddress
    public var mode: ListenerMode
    public var pool: String
    /// Open client connections allowed on this listener, across all workers.
    public var maxconn: Int
    /// TLS termination; nil: plain.
    public var tls: ListenerTLSConfig? = nil

    /// The listener with what a reload applies left out (certificate files, cipher lists, tickets:
    /// the TLS contexts are built again); the rest needs a restart.
    var withoutTLS: ListenerConfig {
        var l = self
        l.tls = l.tls.map { ListenerTLSConfig(certificates: [], ticketKeyLifetime: $0.ticketKeyLifetime, ciphersuites: "", ciphers: "", sessionTickets: 0) }
        return l
    }
}

/// `listeners[i].tls: { certificates: [{cert, key}, ...] }`. The certificate for a connection is
/// chosen by SNI among the certificates' names (exact names before wildcards); the first one is
/// the default. TLS 1.2 and 1.3 only, ALPN http/1.1, no renegotiation, session tickets whose keys
/// are made new every `ticketKeyLifetime`. The server's cipher order is used (ChaCha20 first for a
/// client that puts it first, as clients without AES hardware do).
public struct ListenerTLSConfig: Sendable, Hashable {
    public static let defaultTicketKeyLifetime = Duration.seconds(12 * 3600)
    /// TLS 1.3 suites, OpenSSL's syntax: AES-128-GCM first (a cheaper handshake key schedule with
    /// SHA-256, and faster records, at a strength no attack reaches), as Mozilla's guidelines do.
    public static let defaultCiphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    /// TLS 1.2 ciphers: forward secrecy and AEAD only (Mozilla's "intermediate" list without DHE).
    public static let defaultCiphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")
    public static let sessionTicketsRange = 0...8
    public struct Certificate: Sendable, Hashable {
        /// PEM: the certificate, then its chain.
        public var cert: String
        /// PEM private key.
        public var key: String
    }
    public var certificates: [Certificate]
    /// Session tickets are encrypted with keys made at random for each set of contexts; every
    /// this long the contexts are built again (the certificate files read again), so the keys
    /// rotate and a stolen key opens at most this much of the past (12h).
    public var ticketKeyLifetime: Duration = ListenerTLSConfig.defaultTicketKeyLifetime
    /// `tls.ciphersuites` (TLS 1.3) and `tls.ciphers` (TLS 1.2), in the server's order of preference.
    public var ciphersuites = ListenerTLSConfig.defaultCiphersuites
    public var ciphers = ListenerTLSConfig.defaultCiphers
    /// `tls.session_tickets`: TLS 1.3 tickets sent after a full handshake (1; OpenSSL's default is
    /// 2). A client resumes with one and gets a new one on every resumed connection. 0 turns
    /// tickets off (TLS 1.2 ones too); sessions then resume only by session ID, from this worker's
    /// cache.
    public var sessionTickets = 1
}

public struct AdminConfig: Sendable, Hashable {
    public var listen: SocketAddress
    public var tokenFile: String?
}

public struct ResolverConfig: Sendable, Hashable {
    /// Which address an SRV target gets when DNS has both an A and an AAAA record for it.
    public enum Family: String, Sendable, Hashable, CaseIterable {
        case ipv4
        case ipv6
    }
    public var name: String
    public var nameservers: [SocketAddress]
    /// Shortest time between two resolutions of one name (1s): the re-resolve time for TTL 0,
    /// and the retry time after a failure. A longer TTL is honoured.
    public var interval: Duration
    /// One attempt at one nameserver (500ms); then the next nameserver.
    public var timeout: Duration
    /// A record missing from an answer keeps its template slot this long (10s), so it returns
    /// to the same slot if it comes back.
    public var hold: Duration = .seconds(10)
    /// Preferred address family when a target has both (ipv4); the other is used when it is alone.
    public var family: Family = .ipv4
}

/// Deadlines. Defaults in parentheses.
public struct TimeoutsConfig: Sendable, Hashable {
    /// Whole request head must arrive within this, counted from its first byte or from the
    /// connection becoming idle (10s). 408 on expiry.
    public var clientHead: Duration
    /// Idle keep-alive client connection with no request in progress (60s).
    public var clientIdle: Duration
    /// A client that takes none of the response lbd has buffered for it (max_buffer full) for
    /// this long is closed (60s); the backend is not blamed.
    public var clientWrite: Duration
    /// Each 1 KiB of a request body (or its end) must arrive within this (30s), unless the
    /// backend is the one not reading; 408 otherwise. A minimum rate, so a body dribbled a byte
    /// at a time cannot hold a connection (and a backend) open.
    public var clientBody: Duration
    /// Backend TCP connect (2s). Then retry on another backend, or 503.
    public var backendConnect: Duration
    /// From request sent to the first byte of the response head, and between reads of the
    /// response (30s). 504 if nothing was sent to the client yet.
    public var backendResponse: Duration
    /// Idle keep-alive backend connection kept in a worker's pool (30s).
    public var backendIdle: Duration
    /// Idle time on a TCP-mode session in either direction (5m).
    public var tcpIdle: Duration
    /// SIGTERM: how long in-flight requests may take to finish before exit (10s).
    public var shutdownGrace: Duration
    public init(
        clientHead: Duration = .seconds(10), clientIdle: Duration = .seconds(60),
        clientWrite: Duration = .seconds(60), clientBody: Duration = .seconds(30), backendConnect: Duration = .seconds(2), backendResponse: Duration = .seconds(30),
        backendIdle: Duration = .seconds(30), tcpIdle: Duration = .seconds(300),
        shutdownGrace: Duration = .seconds(10)
    ) {
        self.clientHead = clientHead
        self.clientIdle = clientIdle
        self.clientWrite = clientWrite
        self.clientBody = clientBody
        self.backendConnect = backendConnect
        self.backendResponse = backendResponse
        self.backendIdle = backendIdle
        self.tcpIdle = tcpIdle
        self.shutdownGrace = shutdownGrace
    }
}

/// Limits on what a client may send (see shared/notes/bad-inputs.md "Suggested defaults").
public struct HTTPLimits: Sendable, Hashable {
    /// Request line bytes, CRLF excluded (8192). Above: 414.
    public var maxRequestLine: Int
    /// Whole header section bytes, request line included (32768). Above: 431.
    public var maxHeaderBytes: Int
    /// Header fields (100). Above: 431.
    public var maxHeaderCount: Int
    /// Chunk extension bytes per chunk line (4096). Above: 400.
    public var maxChunkExtension: Int
    /// Pipelined requests read ahead of their responses (32).
    public var maxPipelineDepth: Int
    /// Bytes buffered towards a slow reader before the other side stops being read (256 KiB).
    public var maxBuffer: Int
    /// Bytes all connections together may hold in buffers, split evenly between workers (1 GiB):
    /// above it no connection reads until what is held drains below 7/8 of it.
    public var maxBufferTotal: Int
    public static let maxBufferTotalRange = (1 << 20)...(1 << 40)
    public init(
        maxRequestLine: Int = 8192, maxHeaderBytes: Int = 32768, maxHeaderCount: Int = 100,
        maxChunkExtension: Int = 4096, maxPipelineDepth: Int = 32, maxBuffer: Int = 262_144,
        maxBufferTotal: Int = 1 << 30
    ) {
        self.maxBufferTotal = maxBufferTotal
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxChunkExtension = maxChunkExtension
        self.maxPipelineDepth = maxPipelineDepth
        self.maxBuffer = maxBuffer
    }
}

public struct LogConfig: Sendable, Hashable {
    public enum Level: String, Sendable, Hashable { case trace, debug, info, notice, warning, error, critical }
    public var level: Level
    /// Write one line per request to stdout.
    public var accessLog: Bool
    public init(level: Level = .info, accessLog: Bool = true) {
        self.level = level
        self.accessLog = accessLog
    }
}

/// The whole validated configuration.
public struct LBConfig: Sendable, Hashable {
    /// Worker loops; defaults to the number of cores.
    public var workers: Int
    public var admin: AdminConfig?
    public var stateFile: String?
    /// Sorted by name.
    public var resolvers: [ResolverConfig]
    /// Sorted by name.
    public var pools: [PoolConfig]
    /// In file order.
    public var listeners: [ListenerConfig]
    public var timeouts: TimeoutsConfig
    public var limits: HTTPLimits
    public var log: LogConfig
    /// `failover:`: the VRRP pair; nil when lbd runs alone.
    public var failover: FailoverConfig? = nil

    public func pool(named name: String) -> PoolConfig? { pools.first { $0.name == name } }
}

/// `failover:`: lbd as one of an active/passive pair moving virtual IPs with VRRPv3.
public struct FailoverConfig: Sendable, Hashable {
    public var vrrp: VRRPSettings
}

/// `failover.vrrp`. Defaults in parentheses.
public struct VRRPSettings: Sendable, Hashable {
    public enum ChecksumForm: String, Sendable, Hashable, CaseIterable {
        /// IPv4 pseudo-header included, as keepalived sends it (default).
        case keepalived
        /// VRRP message only, as RFC 9568 says and routers send it.
        case rfc9568
    }
    /// The interface the VIPs live on and adverts are sent from.
    public var interface: String
    /// Virtual router ID, 1...255; the same on both hosts.
    public var vrid: Int
    /// 1...255 (100); 255 = address owner. The higher one is master.
    public var priority: Int
    /// Centisecond resolution, 10ms...40.95s (100ms).
    public var advertInterval: Duration
    public var virtualIPs: [VirtualIPConfig]
    /// Take the VIP back from a lower-priority master (true).
    public var preempt: Bool
    /// Wait this long before preempting (0).
    public var preemptDelay: Duration
    /// Unicast adverts to these IPv4 addresses instead of multicast; adverts from others are dropped.
    public var unicastPeers: [String]
    public var checksum: ChecksumForm
    public var track: [TrackConfig]
    public var peerSync: PeerSyncConfig?
}

/// A virtual IP with its prefix length, `10.0.0.100/24`.
public struct VirtualIPConfig: Sendable, Hashable, CustomStringConvertible {
    /// Dotted IPv4.
    public var address: String
    public var prefixLength: Int
    public var description: String { "\(address)/\(prefixLength)" }
}

/// `failover.vrrp.track[i]`: while `pool` has fewer than `minHealthy` usable backends, the priority
/// changes by `weight`, or, without a weight, the instance is faulted (it gives up and never takes
/// the VIP).
public struct TrackConfig: Sendable, Hashable {
    public var pool: String
    public var minHealthy: Int
    /// -254...254; nil = fault.
    public var weight: Int?
}

/// `failover.vrrp.peer_sync`: admin changes go to the peer over TCP, signed with HMAC-SHA256.
public struct PeerSyncConfig: Sendable, Hashable {
    /// Where the peer's changes arrive (default: all addresses, the peer's port).
    public var listen: SocketAddress
    public var peer: SocketAddress
    /// The shared key, the file's first line (at least 16 characters), the same on both hosts.
    public var keyFile: String
}

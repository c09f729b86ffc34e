// ConfigLoader: whole files in, typed config or every problem out.

import Testing

@testable import LBCore

/// Loads `yaml` and returns its problems, or `[]` if it loaded.
private func problems(_ yaml: String, defaultWorkers: Int = 4) -> [ConfigProblem] {
    do {
        _ = try ConfigLoader.load(yaml: yaml, defaultWorkers: defaultWorkers)
        return []
    } catch {
        return error.problems
    }
}

private func address(_ text: String) -> SocketAddress {
    guard let address = parseSocketAddress(text) else { preconditionFailure("bad test address \(text)") }
    return address
}

/// The smallest valid file; `minimal` with a section appended is how most tests vary one thing.
private let minimal = """
    pools:
      web:
        groups:
          main: { share: 100, static: [127.0.0.1:9001] }
    listeners:
      - { name: public, bind: 0.0.0.0:8080, pool: web }

    """

@Suite("ConfigLoader")
struct ConfigTests {
    @Test("a full config loads to the expected values")
    func fullConfig() throws {
        let yaml = """
            workers: 2
            admin: { listen: 127.0.0.1:9901, token_file: admin.token }
            state_file: state/lbd.json
            resolvers:
              consul: { nameservers: [127.0.0.1:8600, "[::1]:8600"], interval: 1s, timeout: 500ms }
            timeouts: { client_head: 11s, client_idle: 61s, backend_connect: 2500ms, backend_response: 31s,
                        backend_idle: 32s, tcp_idle: 5m, shutdown_grace: 1.5s }
            limits: { max_request_line: 4096, max_header_bytes: 16384, max_header_count: 50,
                      max_chunk_extension: 1024, max_pipeline_depth: 8, max_buffer: 65536 }
            log: { level: warning, access_log: false }
            pools:
              web:
                balance: round_robin
                max_unhealthy: 25%
                retries: 3
                groups:
                  stable: { share: 95, static: [127.0.0.1:9001, {address: 127.0.0.1:9002, weight: 2}] }
                  canary: { share: 5,  static: ["[::1]:9003"] }
                health: { http: { path: /health, expect: 204 }, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
              api:
                balance: least_loaded
                max_unhealthy: 12.5
                retries: 0
                groups:
                  main: { share: 100, srv: _api._tcp.service.consul, resolver: consul, slots: 32 }
                health: { tcp: {}, interval: 5s, timeout: 500ms, rise: 1, fall: 5 }
            listeners:
              - { name: public, bind: 0.0.0.0:8080, mode: http, pool: web, maxconn: 20000 }
              - { name: api-l4, bind: "[::]:9090", mode: tcp, pool: api }
            """
        let config = try ConfigLoader.load(yaml: yaml, defaultWorkers: 8)
        let expected = LBConfig(
            workers: 2,
            admin: AdminConfig(listen: address("127.0.0.1:9901"), tokenFile: "admin.token"),
            stateFile: "state/lbd.json",
            resolvers: [
                ResolverConfig(
                    name: "consul", nameservers: [address("127.0.0.1:8600"), address("[::1]:8600")],
                    interval: .seconds(1), timeout: .milliseconds(500))
            ],
            pools: [
                PoolConfig(
                    name: "api", balance: .leastLoaded, maxUnhealthy: Share(basisPoints: 1250), retries: 0,
                    groups: [
                        GroupConfig(
                            name: "main", share: Share(basisPoints: 10_000),
                            source: .srv(name: "_api._tcp.service.consul", resolver: "consul", slots: 32))
                    ],
                    health: HealthConfig(
                        check: .tcp, interval: .seconds(5), timeout: .milliseconds(500), rise: 1, fall: 5)),
                PoolConfig(
                    name: "web", balance: .roundRobin, maxUnhealthy: Share(basisPoints: 2500), retries: 3,
                    groups: [
                        GroupConfig(
                            name: "stable", share: Share(basisPoints: 9500),
                            source: .staticBackends([
                                BackendConfig(address: address("127.0.0.1:9001"), weight: 1),
                                BackendConfig(address: address("127.0.0.1:9002"), weight: 2),
                            ])),
                        GroupConfig(
                            name: "canary", share: Share(basisPoints: 500),
                            source: .staticBackends([BackendConfig(address: address("[::1]:9003"), weight: 1)])),
                    ],
                    health: HealthConfig(
                        check: .http(path: "/health", expect: 204), interval: .seconds(2), timeout: .seconds(1),
                        rise: 2, fall: 3)),
            ],
            listeners: [
                ListenerConfig(name: "public", bind: address("0.0.0.0:8080"), mode: .http, pool: "web", maxconn: 20000),
                ListenerConfig(name: "api-l4", bind: address("[::]:9090"), mode: .tcp, pool: "api", maxconn: 10000),
            ],
            timeouts: TimeoutsConfig(
                clientHead: .seconds(11), clientIdle: .seconds(61), backendConnect: .milliseconds(2500),
                backendResponse: .seconds(31), backendIdle: .seconds(32), tcpIdle: .seconds(300),
                shutdownGrace: .milliseconds(1500)),
            limits: HTTPLimits(
                maxRequestLine: 4096, maxHeaderBytes: 16384, maxHeaderCount: 50, maxChunkExtension: 1024,
                maxPipelineDepth: 8, maxBuffer: 65536),
            log: LogConfig(level: .warning, accessLog: false))
        #expect(config == expected)
        #expect(config.pool(named: "web")?.groups.map(\.name) == ["stable", "canary"])
    }

    @Test("absent sections and keys take their defaults")
    func defaults() throws {
        let config = try ConfigLoader.load(yaml: minimal, defaultWorkers: 4)
        #expect(config.workers == 4)
        #expect(config.admin == nil)
        #expect(config.stateFile == nil)
        #expect(config.resolvers.isEmpty)
        #expect(config.timeouts == TimeoutsConfig())
        #expect(config.limits == HTTPLimits())
        #expect(config.log == LogConfig(level: .info, accessLog: true))
        let pool = try #require(config.pools.first)
        #expect(pool.balance == .roundRobin)
        #expect(pool.maxUnhealthy == Share(basisPoints: 3000))
        #expect(pool.retries == 2)
        #expect(pool.health == nil)
        let backend = BackendConfig(address: address("127.0.0.1:9001"), weight: 1)
        #expect(pool.groups.first?.source == .staticBackends([backend]))
        #expect(config.listeners.first?.mode == .http)
        #expect(config.listeners.first?.maxconn == 10_000)
    }

    @Test("defaults inside optional sections")
    func nestedDefaults() throws {
        let yaml = """
            admin: {}
            resolvers:
              consul: { nameservers: [127.0.0.1:8600] }
            pools:
              web:
                groups:
                  main: { share: 100, srv: _web._tcp.service.consul, resolver: consul }
                health: { tcp: }
              api:
                groups:
                  main: { share: 100%, static: [127.0.0.1:9001] }
                health: { http: }
            listeners:
              - { name: public, bind: 0.0.0.0:8080, pool: web }
            """
        let config = try ConfigLoader.load(yaml: yaml, defaultWorkers: 1)
        #expect(config.admin == AdminConfig(listen: address("127.0.0.1:9901"), tokenFile: nil))
        #expect(config.resolvers.first?.interval == .seconds(1))
        #expect(config.resolvers.first?.timeout == .milliseconds(500))
        #expect(config.resolvers.first?.hold == .seconds(10))
        #expect(config.resolvers.first?.family == .ipv4)
        let web = try #require(config.pool(named: "web"))
        #expect(web.groups.first?.source == .srv(name: "_web._tcp.service.consul", resolver: "consul", slots: 16))
        #expect(web.health == HealthConfig(check: .tcp, interval: .seconds(2), timeout: .seconds(1), rise: 2, fall: 3))
        #expect(config.pool(named: "api")?.health?.check == .http(path: "/", expect: 200))
    }

    @Test("resolver hold may be zero; family ipv6")
    func resolverHoldAndFamily() throws {
        let yaml = """
            resolvers:
              consul: { nameservers: ["[::1]:8600"], hold: 0s, family: ipv6, interval: 250ms }
            pools:
              web:
                groups:
                  main: { share: 100, srv: _web._tcp.service.consul, resolver: consul }
            listeners:
              - { name: public, bind: 127.0.0.1:8080, pool: web }
            """
        let r = try #require(try ConfigLoader.load(yaml: yaml, defaultWorkers: 1).resolvers.first)
        #expect(r.hold == .zero && r.family == .ipv6 && r.interval == .milliseconds(250))
        #expect(r.nameservers == [SocketAddress(host: "::1", port: 8600)])
    }

    @Test("defaultWorkers is clamped to 1...256", arguments: [(0, 1), (1, 1), (12, 12), (256, 256), (1000, 256)])
    func defaultWorkers(given: Int, expected: Int) throws {
        #expect(try ConfigLoader.load(yaml: minimal, defaultWorkers: given).workers == expected)
    }

    @Test("groups keep file order; pools and resolvers are sorted; listeners keep file order")
    func ordering() throws {
        let yaml = """
            resolvers:
              zulu: { nameservers: [127.0.0.1:8600] }
              alpha: { nameservers: [127.0.0.1:8601] }
            pools:
              zeta:
                groups:
                  zz: { share: 10, static: [127.0.0.1:9001] }
                  aa: { share: 20, static: [127.0.0.1:9002] }
                  mm: { share: 30, static: [127.0.0.1:9003] }
                  bb: { share: 40, static: [127.0.0.1:9004] }
              alpha:
                groups:
                  only: { share: 100, static: [127.0.0.1:9001] }
            listeners:
              - { name: second, bind: 0.0.0.0:8081, pool: zeta }
              - { name: first, bind: 0.0.0.0:8080, pool: alpha }
            """
        let config = try ConfigLoader.load(yaml: yaml, defaultWorkers: 1)
        #expect(config.pools.map(\.name) == ["alpha", "zeta"])
        #expect(config.pool(named: "zeta")?.groups.map(\.name) == ["zz", "aa", "mm", "bb"])
        #expect(config.resolvers.map(\.name) == ["alpha", "zulu"])
        #expect(config.listeners.map(\.name) == ["second", "first"])
    }

    @Test("a broken file reports every problem at its exact path")
    func everyProblem() {
        let yaml = """
            workers: abc
            timeouts: { client_head: 0s, tcp_idle: forever }
            limits: { max_request_line: 8192, max_header_bytes: 4096 }
            log: { level: verbose }
            pools:
              web:
                retires: 3
                balance: random
                groups:
                  main: { share: 90, static: [127.0.0.1:9001, {address: 127.0.0.1:9002, weight: 0}] }
                  canary: { share: 5.5, static: [127.0.0.1:9001], srv: _x._tcp.consul }
                  dns: { share: 5, srv: _web._tcp.service.consul, resolver: consol, slots: 5000 }
                health: { http: { path: /h }, interval: 1s, timeout: 1s, rise: 0 }
            listeners:
              - { name: public, bind: localhost:8080, pool: web }
              - { name: public, bind: 0.0.0.0:8080, pool: wbe, maxconn: 0 }
              - { name: other, bind: 0.0.0.0:8080, mode: udp, pool: web }
            """
        let expected: [(String, String)] = [
            ("workers", "expected an integer, found 'abc'"),
            ("pools.web.retires", "unknown key 'retires'; did you mean 'retries'?"),
            ("pools.web.groups.canary", "has both 'static' and 'srv'; a group needs exactly one"),
            ("pools.web.balance", "'random' is not a balance algorithm; expected one of: round_robin, least_loaded"),
            ("pools.web.groups.main.static[1].weight", "0 is outside 1...256"),
            ("pools.web.groups.dns.resolver", "no resolver named 'consol'; none are defined"),
            ("pools.web.groups.dns.slots", "5000 is outside 1...4096"),
            ("pools.web.groups", "group shares add up to 100.5%; they must add up to 100%"),
            ("pools.web.health.timeout", "1s must be less than interval 1s"),
            ("pools.web.health.rise", "0 is outside 1...100"),
            (
                "listeners[0].bind",
                "'localhost:8080' is not a numeric address with a port, e.g. 127.0.0.1:80 or [::1]:80"
            ),
            ("listeners[1].name", "'public' is already the name of listeners[0]"),
            ("listeners[1].pool", "no pool named 'wbe'; defined: web"),
            ("listeners[1].maxconn", "0 is outside 1...1000000"),
            ("listeners[2].bind", "0.0.0.0:8080 is already bound by listeners[1]"),
            ("listeners[2].mode", "'udp' is not a listener mode; expected one of: http, tcp"),
            ("timeouts.client_head", "0s must be greater than 0"),
            (
                "timeouts.tcp_idle",
                "'forever' is not a duration; write a number and a unit (us, ms, s, m, h), e.g. 500ms"
            ),
            ("limits.max_header_bytes", "4096 is less than max_request_line 8192; the header section includes it"),
            (
                "log.level",
                "'verbose' is not a log level; expected one of: trace, debug, info, notice, warning, error, critical"
            ),
        ]
        let found = problems(yaml)
        #expect(found == expected.map { ConfigProblem(path: $0.0, message: $0.1) })
    }

    @Test("the error prints one problem per line")
    func errorDescription() {
        let error = ConfigError(problems: [
            ConfigProblem(path: "workers", message: "0 is outside 1...256"),
            ConfigProblem(path: "", message: "invalid YAML"),
        ])
        #expect(error.description == "workers: 0 is outside 1...256\ninvalid YAML")
    }
}

// ConfigLoader rules one at a time: each file below breaks exactly one rule of an otherwise valid
// config, and must report exactly that problem at exactly that path.

import Foundation
import Testing

@testable import LBCore

private let listener = "listeners: [{name: public, bind: 0.0.0.0:8080, pool: web}]"

/// A valid file with `pool` as pool `web` (flow style) and `extra` top-level lines.
private func file(pool: String = "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}}", _ extra: String = "")
    -> String
{
    "pools: {web: \(pool)}\n\(listener)\n\(extra)\n"
}

/// A valid file with a VRRP section whose `extra` line (flow style) may override its keys.
private func vrrp(_ extra: String) -> String {
    var fields = ["interface: eth0", "vrid: 51", "virtual_ips: [10.0.0.100/24]"]
    if let key = extra.split(separator: ":").first { fields.removeAll { $0.hasPrefix(key + ":") } }
    return file("failover: {vrrp: {\((fields + [extra]).joined(separator: ", "))}}")
}

/// A valid file whose pool `web` has these `groups` (flow style).
private func groups(_ groups: String) -> String { file(pool: "{groups: {\(groups)}}") }

private func problems(_ yaml: String) -> [ConfigProblem] {
    do {
        _ = try ConfigLoader.load(yaml: yaml, defaultWorkers: 2)
        return []
    } catch {
        return error.problems
    }
}

private let singleRuleCases: [(yaml: String, path: String, message: String)] = [
    (file("workers: 0"), "workers", "0 is outside 1...256"),
    (file("workers: 257"), "workers", "257 is outside 1...256"),
    (file("workers: 2.5"), "workers", "expected an integer, found '2.5'"),
    (file("workers: [2]"), "workers", "expected an integer, found a list"),
    (
        file("failovr: {}"), "failovr",
        "unknown key 'failovr'; did you mean 'failover'?"
    ),
    (file("failover: {}"), "failover.vrrp", "required key is missing"),
    (vrrp("vrid: 256"), "failover.vrrp.vrid", "256 is outside 1...255"),
    (vrrp("priority: 0"), "failover.vrrp.priority", "0 is outside 1...255"),
    (
        vrrp("advert_interval: 105ms"), "failover.vrrp.advert_interval",
        "105ms must be a whole number of centiseconds within 10ms...40.95s"
    ),
    (
        vrrp("advert_interval: 41s"), "failover.vrrp.advert_interval",
        "41s must be a whole number of centiseconds within 10ms...40.95s"
    ),
    (
        vrrp("interface: ''"), "failover.vrrp.interface",
        "'' is not an interface name (1...15 characters, no '/')"
    ),
    (
        vrrp("virtual_ips: [10.0.0.256]"), "failover.vrrp.virtual_ips[0]",
        "'10.0.0.256' is not an IPv4 address with an optional prefix length, e.g. 10.0.0.100/24"
    ),
    (vrrp("virtual_ips: [10.0.0.1, 10.0.0.1/24]"), "failover.vrrp.virtual_ips[1]", "10.0.0.1 is listed twice"),
    (vrrp("virtual_ips: []"), "failover.vrrp.virtual_ips", "at least one virtual IP is required"),
    (vrrp("unicast_peers: ['::1']"), "failover.vrrp.unicast_peers[0]", "'::1' is not an IPv4 address"),
    (
        vrrp("checksum: cisco"), "failover.vrrp.checksum",
        "'cisco' is not a checksum form; expected one of: keepalived, rfc9568"
    ),
    (vrrp("track: {pool: api}"), "failover.vrrp.track.pool", "no pool named 'api'; defined: web"),
    (vrrp("track: [{pool: web}, {pool: web, weight: 300}]"), "failover.vrrp.track[1].weight", "300 is outside -254...254"),
    (
        vrrp("peer_sync: {peer: 10.0.0.2:9902}"), "failover.vrrp.peer_sync.key_file", "required key is missing"
    ),
    (file("pools: {}"), "pools", "duplicate key 'pools' (first written on line 1)"),
    (file("admin: {listen: 127.0.0.1:0}"), "admin.listen", "port 0 in 127.0.0.1:0 is outside 1...65535"),
    (
        file("admin: {listen: localhost:9901}"), "admin.listen",
        "'localhost:9901' is not a numeric address with a port, e.g. 127.0.0.1:80 or [::1]:80"
    ),
    (
        file("admin: {token_file: ''}"), "admin.token_file",
        "'' is not a usable file path; it must be non-empty text without NUL"
    ),
    (file("log: {access_log: maybe}"), "log.access_log", "expected true or false, found 'maybe'"),
    (
        file("timeouts: {client_idle: 60}"), "timeouts.client_idle",
        "'60' is not a duration; write a number and a unit (us, ms, s, m, h), e.g. 500ms"
    ),
    (file("limits: {max_request_line: 63}"), "limits.max_request_line", "63 is outside 64...1073741824"),
    (
        file("limits: {max_header_bytes: 1023, max_request_line: 512}"), "limits.max_header_bytes",
        "1023 is outside 1024...1073741824"
    ),
    (file("limits: {max_header_count: 10001}"), "limits.max_header_count", "10001 is outside 1...10000"),
    (file("limits: {max_chunk_extension: 0}"), "limits.max_chunk_extension", "0 is outside 1...1073741824"),
    (file("limits: {max_pipeline_depth: 1025}"), "limits.max_pipeline_depth", "1025 is outside 1...1024"),
    (file("limits: {max_buffer: 16383}"), "limits.max_buffer", "16383 is outside 16384...1073741824"),
    (file("limits: {max_buffer_total: 1048575}"), "limits.max_buffer_total", "1048575 is outside 1048576...1099511627776"),
    (
        file("resolvers: {consul: {nameservers: []}}"), "resolvers.consul.nameservers",
        "at least one nameserver is required"
    ),
    (file("resolvers: {consul: {interval: 1s}}"), "resolvers.consul.nameservers", "required key is missing"),
    (
        file("resolvers: {consul: {nameservers: [127.0.0.1:53], family: ipv5}}"), "resolvers.consul.family",
        "must be one of ipv4, ipv6 (got 'ipv5')"
    ),
    (
        file("resolvers: {consul: {nameservers: [127.0.0.1:53], hold: soon}}"), "resolvers.consul.hold",
        "'soon' is not a duration; write a number and a unit (us, ms, s, m, h), e.g. 500ms"
    ),
    (
        file("resolvers: {'con sul': {nameservers: [127.0.0.1:53]}}"), "resolvers.con sul",
        "'con sul' is not a valid name; use letters, digits, '_', '.' and '-'"
    ),
    (
        file("resolvers: {consul: {nameservers: [127.0.0.1:53, {a: 1}]}}"), "resolvers.consul.nameservers[1]",
        "expected text, found a mapping"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, max_unhealthy: 120%}"),
        "pools.web.max_unhealthy", "120% is outside 0...100%"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, retries: 11}"), "pools.web.retries",
        "11 is outside 0...10"
    ),
    (file(pool: "{groups: {}}"), "pools.web.groups", "at least one group is required"),
    (file(pool: "{groups: [127.0.0.1:9001]}"), "pools.web.groups", "expected a mapping, found a list"),
    ("pools: [web]\n\(listener)", "pools", "expected a mapping, found a list"),
    (
        file(pool: "{groups: {main: {share: 100, srv: _web._tcp.service.consul, resolver: c}}}", "resolvers: [c]"),
        "resolvers", "expected a mapping, found a list"
    ),
    (file(pool: "{balance: round_robin}"), "pools.web.groups", "required key is missing"),
    (file(pool: "[127.0.0.1:9001]"), "pools.web", "expected a mapping, found a list"),
    (
        groups("main: {share: 99, static: [127.0.0.1:9001]}"), "pools.web.groups",
        "group shares add up to 99%; they must add up to 100%"
    ),
    (
        groups("a: {share: 0.01, static: [127.0.0.1:9001]}, b: {share: 99.98, static: [127.0.0.1:9002]}"),
        "pools.web.groups", "group shares add up to 99.99%; they must add up to 100%"
    ),
    (
        groups("main: {share: 0.001, static: [127.0.0.1:9001]}"), "pools.web.groups.main.share",
        "'0.001' is not a percentage; write 0...100 with at most 2 decimals, e.g. 5 or 2.5%"
    ),
    (groups("main: {static: [127.0.0.1:9001]}"), "pools.web.groups.main.share", "required key is missing"),
    (
        groups("main: {share: 100}"), "pools.web.groups.main",
        "has neither 'static' nor 'srv'; a group needs exactly one"
    ),
    (groups("main: {share: 100, static: []}"), "pools.web.groups.main.static", "at least one backend is required"),
    (
        groups("main: {share: 100, static: 127.0.0.1:9001}"), "pools.web.groups.main.static",
        "expected a list, found '127.0.0.1:9001'"
    ),
    (
        groups("main: {share: 100, static: [{address: 127.0.0.1:9001, wieght: 2}]}"),
        "pools.web.groups.main.static[0].wieght", "unknown key 'wieght'; did you mean 'weight'?"
    ),
    (
        groups("main: {share: 100, static: [{weight: 2}]}"), "pools.web.groups.main.static[0].address",
        "required key is missing"
    ),
    (
        groups("main: {share: 100, static: [127.0.0.1:9001, {address: 127.0.0.1:9002, weight: 257}]}"),
        "pools.web.groups.main.static[1].weight", "257 is outside 1...256"
    ),
    (
        groups("main: {share: 100, static: [127.0.0.1:9001, 'example.com:80']}"), "pools.web.groups.main.static[1]",
        "'example.com:80' is not a numeric address with a port, e.g. 127.0.0.1:80 or [::1]:80"
    ),
    (
        groups("a: {share: 50, static: ['[::1]:9001']}, b: {share: 50, static: [{address: '[0::1]:9001'}]}"),
        "pools.web.groups.b.static[0].address",
        "[::1]:9001 is already listed at pools.web.groups.a.static[0] in this pool"
    ),
    (
        groups("main: {share: 100, static: [127.0.0.1:9001], resolver: consul}"), "pools.web.groups.main.resolver",
        "'resolver' applies only to 'srv' groups, not 'static'"
    ),
    (
        groups("main: {share: 100, srv: _web._tcp.service.consul}"), "pools.web.groups.main.resolver",
        "required key is missing"
    ),
    (
        file(
            pool: "{groups: {main: {share: 100, srv: 'not a name', resolver: c}}}",
            "resolvers: {c: {nameservers: [127.0.0.1:53]}}"),
        "pools.web.groups.main.srv", "'not a name' is not a DNS name, e.g. _web._tcp.service.consul"
    ),
    (
        groups("'ma in': {share: 100, static: [127.0.0.1:9001]}"), "pools.web.groups.ma in",
        "'ma in' is not a valid name; use letters, digits, '_', '.' and '-'"
    ),
    (
        groups("main: {share: 100, static: [127.0.0.1:9001]}, main: {share: 100, static: [127.0.0.1:9002]}"),
        "pools.web.groups.main", "duplicate key 'main' (first written on line 1)"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {interval: 2s}}"),
        "pools.web.health", "has neither 'http' nor 'tcp'; a health check needs exactly one"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {tcp: {}, http: {}}}"),
        "pools.web.health", "has both 'http' and 'tcp'; a health check needs exactly one"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {tcp: {port: 1}}}"),
        "pools.web.health.tcp.port", "unknown key 'port'; no keys are allowed here"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {http: {path: health}}}"),
        "pools.web.health.http.path",
        "'health' is not a request path; it must start with '/' and have no spaces or controls"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {http: {expect: 99}}}"),
        "pools.web.health.http.expect", "99 is outside 100...599"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {tcp: {}, timeout: 3s}}"),
        "pools.web.health.timeout", "3s must be less than interval 2s (default)"
    ),
    (
        file(pool: "{groups: {main: {share: 100, static: [127.0.0.1:9001]}}, health: {tcp: {}, fall: 101}}"),
        "pools.web.health.fall", "101 is outside 1...100"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\nlisteners: []",
        "listeners", "at least one listener is required"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\nlisteners: {public: {}}",
        "listeners", "expected a list, found a mapping"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\nlisteners: [{name: p, pool: web}]",
        "listeners[0].bind", "required key is missing"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "listeners: [{name: p, bind: 0.0.0.0:80, pool: web, tls: {}}]",
        "listeners[0].tls.certificates", "required key is missing"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "listeners: [{name: p, bind: 0.0.0.0:80, pool: web, tls: {certificates: [{cert: a.pem, key: a.key}], ticket_key_lifetime: soon}}]",
        "listeners[0].tls.ticket_key_lifetime", "'soon' is not a duration; write a number and a unit (us, ms, s, m, h), e.g. 500ms"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "listeners: [{name: p, bind: 0.0.0.0:80, pool: web, tls: {certificates: [{cert: a.pem, key: a.key}], session_tickets: 9}}]",
        "listeners[0].tls.session_tickets", "9 is outside 0...8"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "listeners: [{name: p, bind: 0.0.0.0:80, pool: web, tls: {certificates: [{cert: a.pem, key: a.key}], ciphersuites: [a]}}]",
        "listeners[0].tls.ciphersuites", "expected text, found a list"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "timeouts: {client_body: 0s}\nlisteners: [{name: p, bind: 0.0.0.0:80, pool: web}]",
        "timeouts.client_body", "0s must be greater than 0"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "listeners: [{name: 'pub lic', bind: 0.0.0.0:80, pool: web}]",
        "listeners[0].name", "'pub lic' is not a valid name; use letters, digits, '_', '.' and '-'"
    ),
    (
        "pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}\n"
            + "listeners: [{name: p, bind: '[::1]:65536', pool: web}]",
        "listeners[0].bind", "'[::1]:65536' is not a numeric address with a port, e.g. 127.0.0.1:80 or [::1]:80"
    ),
]

@Suite("ConfigLoader rules")
struct ConfigRuleTests {
    @Test("the base file is valid")
    func baseIsValid() {
        #expect(problems(file()).isEmpty)
    }

    @Test("each broken rule is one problem at its path", arguments: singleRuleCases)
    func singleRule(yaml: String, path: String, message: String) {
        #expect(problems(yaml) == [ConfigProblem(path: path, message: message)], "\(yaml)")
    }

    @Test("an empty file lacks pools and listeners", arguments: ["", "# nothing\n", "---\n"])
    func emptyFile(yaml: String) {
        #expect(
            problems(yaml) == [
                ConfigProblem(path: "pools", message: "required key is missing"),
                ConfigProblem(path: "listeners", message: "required key is missing"),
            ])
    }

    @Test("a top level that is not a mapping is one problem")
    func topLevelList() {
        #expect(problems("- a\n- b\n") == [ConfigProblem(path: "", message: "expected a mapping, found a list")])
    }

    @Test("a YAML syntax error is one problem with its line and column")
    func syntaxError() throws {
        let found = problems("pools:\n  web: {groups: [\nlisteners: []\n")
        #expect(found.count == 1)
        let problem = try #require(found.first)
        #expect(problem.path == "")
        #expect(problem.message.hasPrefix("invalid YAML at line "))
        #expect(problem.message.contains("column"))
    }

    @Test("collections nested past 64 levels are one problem, not a stack overflow in the YAML loader")
    func deepNesting() {
        let refused = [ConfigProblem(path: "", message: "collections nest deeper than 64 levels")]
        #expect(problems("pools: " + String(repeating: "[", count: 10_000)) == refused)
        #expect(problems("pools: " + String(repeating: "{a: ", count: 65) + "1" + String(repeating: "}", count: 65)) == refused)
        // 64 levels (the top mapping and `pools` count) is only a wrong value, reported by path.
        let deep = problems("pools: {web: " + String(repeating: "[", count: 62) + String(repeating: "]", count: 62) + "}")
        #expect(!deep.isEmpty && !deep.contains { $0.message.contains("nest deeper") })
    }

    @Test("a leading byte-order mark does not hide deep nesting from the check (the fuzzer's second crash)")
    func deepNestingAfterByteOrderMark() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/config/bom-deep-nesting.yaml")
        let text = String(decoding: try Data(contentsOf: corpus), as: UTF8.self)
        #expect(text.hasPrefix("\u{FEFF}"))
        #expect(problems(text) == [ConfigProblem(path: "", message: "collections nest deeper than 64 levels")])
    }

    @Test("a listener naming a missing pool is reported once, even when pools are empty")
    func emptyPools() {
        #expect(
            problems("pools: {}\n\(listener)") == [
                ConfigProblem(path: "pools", message: "at least one pool is required"),
                ConfigProblem(path: "listeners[0].pool", message: "no pool named 'web'; none are defined"),
            ])
    }

    @Test("a malformed pool still counts as defined for references")
    func malformedPoolIsDefined() {
        #expect(
            problems("pools: {web: [1]}\n\(listener)") == [
                ConfigProblem(path: "pools.web", message: "expected a mapping, found a list")
            ])
    }

    @Test("load(path:) reads a file, and an unreadable file is one problem naming it")
    func loadFromFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lbd-config-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("lbd.yaml")
        try file().write(to: good, atomically: true, encoding: .utf8)
        #expect(try ConfigLoader.load(path: good.path, defaultWorkers: 3).workers == 3)

        let missing = directory.appendingPathComponent("missing.yaml").path
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: missing, defaultWorkers: 1) }
        do {
            _ = try ConfigLoader.load(path: missing, defaultWorkers: 1)
        } catch {
            #expect(
                error.problems == [
                    ConfigProblem(path: "", message: "cannot read config file '\(missing)': No such file or directory")
                ])
        }

        let binary = directory.appendingPathComponent("binary.yaml")
        try Data([0x70, 0x3A, 0xFF, 0xFE]).write(to: binary)
        do {
            _ = try ConfigLoader.load(path: binary.path, defaultWorkers: 1)
            Issue.record("binary file loaded")
        } catch {
            #expect(error.problems.map(\.message) == ["cannot read config file '\(binary.path)': not valid UTF-8"])
        }
    }
}

@Test func failoverDefaultsAndTrackForms() throws {
    let yaml = """
        pools: {web: {groups: {main: {share: 100, static: [127.0.0.1:9001]}}}}
        listeners: [{name: public, bind: 0.0.0.0:8080, pool: web}]
        failover:
          vrrp:
            interface: veth0
            vrid: 51
            virtual_ips: [10.99.0.10/24, 10.99.0.20]
            track: {pool: web, min_healthy: 2, weight: -100}
            peer_sync: {peer: 10.99.0.12:9902, key_file: sync.key}
        """
    let vrrp = try #require(try ConfigLoader.load(yaml: yaml, defaultWorkers: 2).failover?.vrrp)
    #expect(vrrp.priority == 100)
    #expect(vrrp.advertInterval == .milliseconds(100))
    #expect(vrrp.preempt && vrrp.preemptDelay == .zero && vrrp.checksum == .keepalived && vrrp.unicastPeers.isEmpty)
    #expect(vrrp.virtualIPs.map(\.description) == ["10.99.0.10/24", "10.99.0.20/32"])
    #expect(vrrp.track == [TrackConfig(pool: "web", minHealthy: 2, weight: -100)])
    #expect(vrrp.peerSync?.listen == SocketAddress(host: "0.0.0.0", port: 9902))
    #expect(vrrp.peerSync?.peer == SocketAddress(host: "10.99.0.12", port: 9902))
}

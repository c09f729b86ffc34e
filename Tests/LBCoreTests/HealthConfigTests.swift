import Testing
@testable import LBCore

@Suite("Health configuration")
struct HealthConfigTests {
    private func yaml(_ poolExtra: String) -> String {
        """
        pools:
          web:
            groups: { main: { share: 100, static: [127.0.0.1:9001, 127.0.0.1:9002] } }
        \(poolExtra)
        listeners:
          - { name: public, bind: 127.0.0.1:8080, pool: web }
        """
    }

    @Test func passiveSlowStartBudgetAndHooksLoad() throws {
        let config = try ConfigLoader.load(
            yaml: yaml("""
                    passive: { failures: 5, ejection: 2s, max_ejection: 30s, backoff: fibonacci, reset_after: 2m, on_5xx: true }
                    slow_start: 10s
                    retry_budget: 25%
                    hooks: { command: /usr/local/bin/notify, min_interval: 5s }
                """), defaultWorkers: 1)
        let pool = try #require(config.pool(named: "web"))
        #expect(pool.passive.failures == 5)
        #expect(pool.passive.ejection == .seconds(2))
        #expect(pool.passive.maxEjection == .seconds(30))
        #expect(pool.passive.backoff == .fibonacci)
        #expect(pool.passive.resetAfter == .seconds(120))
        #expect(pool.passive.on5xx)
        #expect(pool.slowStart == .seconds(10))
        #expect(pool.retryBudget == Share(basisPoints: 2500))
        #expect(pool.hooks == HookConfig(command: "/usr/local/bin/notify", minInterval: .seconds(5)))
    }

    @Test func defaults() throws {
        let pool = try #require(try ConfigLoader.load(yaml: yaml(""), defaultWorkers: 1).pool(named: "web"))
        #expect(pool.passive == PassiveConfig())
        #expect(pool.slowStart == .zero)
        #expect(pool.retryBudget == Share(basisPoints: 2000))
        #expect(pool.hooks == nil)
        let zero = try ConfigLoader.load(yaml: yaml("    slow_start: 0s"), defaultWorkers: 1)
        #expect(zero.pool(named: "web")?.slowStart == .zero)
    }

    @Test func everyBadValueIsNamedByPath() {
        do {
            _ = try ConfigLoader.load(
                yaml: yaml("""
                        passive: { failures: 0, ejection: 10s, max_ejection: 5s, backoff: linear, colour: red }
                        slow_start: soon
                        retry_budget: 120%
                        hooks: { min_interval: 1s }
                    """), defaultWorkers: 1)
            Issue.record("a broken config loaded")
        } catch {
            let paths = Set(error.problems.map(\.path))
            for expected in [
                "pools.web.passive.failures", "pools.web.passive.max_ejection", "pools.web.passive.backoff",
                "pools.web.passive.colour", "pools.web.slow_start", "pools.web.retry_budget", "pools.web.hooks.command",
            ] {
                #expect(paths.contains(expected), "missing \(expected) in \(error.problems)")
            }
        }
    }
}

// Operator hooks on health changes (as Apollo runs scripts with APOLLO_SERVICE_STATUS_*): a pool's
// `hooks.command` runs through /bin/sh with the pool's state in LBD_* variables whenever a backend
// of the pool changes state or a group becomes (un)capped. Never blocks the control loop:
// commands are started with posix_spawn and reaped with WNOHANG on the monitor's tick. Rate-limited
// per pool: at most one run per `min_interval`; changes inside the window are folded into one
// trailing run carrying the latest state. Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A pool's state as passed to its hook.
struct PoolHealthSummary: Equatable {
    var members = 0
    var up = 0
    var down = 0
    var ejected = 0
    var capped = false
    /// The last change that triggered the hook: `backend` or `group`, with the backend and state.
    var event = "backend"
    var backend = ""
    var state = ""

    /// `LBD_*` variables, percentages as whole numbers.
    var environment: [String] {
        func pct(_ n: Int) -> Int { members == 0 ? 0 : n * 100 / members }
        return [
            "LBD_EVENT=\(event)", "LBD_BACKEND=\(backend)", "LBD_STATE=\(state)",
            "LBD_POOL_MEMBERS=\(members)", "LBD_POOL_UP=\(up)", "LBD_POOL_DOWN=\(down)",
            "LBD_POOL_EJECTED=\(ejected)", "LBD_POOL_UP_PCT=\(pct(up))", "LBD_POOL_DOWN_PCT=\(pct(down))",
            "LBD_POOL_EJECTED_PCT=\(pct(ejected))", "LBD_POOL_CAPPED=\(capped ? 1 : 0)",
        ]
    }
}

final class HealthHooks {
    private let config: LBConfig
    private let logger: Logger
    private var pending: [Int: PoolHealthSummary] = [:]
    private var lastRun: [Int: MonotonicInstant] = [:]
    private var children: [(pid: pid_t, pool: Int)] = []

    init(config: LBConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Records a change of pool `pool`; runs its hook now or as soon as its rate limit allows.
    func changed(pool: Int, summary: PoolHealthSummary, now: MonotonicInstant) {
        guard config.pools[pool].hooks != nil else { return }
        pending[pool] = summary
        runDue(now: now)
    }

    /// Starts due runs and reaps finished commands. Called on every monitor tick.
    func tick(now: MonotonicInstant) {
        runDue(now: now)
        reap()
    }

    private func runDue(now: MonotonicInstant) {
        for (pool, summary) in pending {
            guard let hook = config.pools[pool].hooks else { continue }
            if let last = lastRun[pool], now < last + hook.minInterval { continue }
            pending[pool] = nil
            lastRun[pool] = now
            spawn(hook.command, pool: pool, summary: summary)
        }
    }

    private func spawn(_ command: String, pool: Int, summary: PoolHealthSummary) {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        let env = ["PATH=\(path)", "LBD_POOL=\(config.pools[pool].name)"] + summary.environment
        let argv = ["/bin/sh", "-c", command]
        var cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", nil, nil, &cArgv, &cEnv)
        if rc == 0 {
            children.append((pid, pool))
            logger.info("hook started", metadata: ["pool": "\(config.pools[pool].name)", "pid": "\(pid)"])
        } else {
            logger.error("hook could not start", metadata: ["pool": "\(config.pools[pool].name)", "errno": "\(rc)"])
        }
    }

    private func reap() {
        children.removeAll { child in
            var status: Int32 = 0
            let r = waitpid(child.pid, &status, WNOHANG)
            guard r == child.pid || r < 0 else { return false }
            // WIFEXITED / WEXITSTATUS are macros; status 0 means a clean exit 0.
            if r == child.pid && status != 0 {
                logger.warning(
                    "hook failed",
                    metadata: ["pool": "\(config.pools[child.pool].name)", "pid": "\(child.pid)", "status": "\(status)"])
            }
            return true
        }
    }
}

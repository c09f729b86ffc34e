// Configuration loading: file → YAML tree → `RawConfig` (shape) → `LBConfig` (values).
//
// Pure apart from reading the file in `load(path:)`: no clock, no network, no global state, so
// `lbd check`, startup and SIGHUP reload all use the same code and get the same answer. Both
// stages run to the end even after a problem, and every problem is thrown at once.

import Yams

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Loads and validates lbd's YAML configuration.
///
/// Call from any thread; it holds no state. A reload should load the whole file first and only
/// then replace the running configuration, so a rejected file leaves the old one live.
public enum ConfigLoader {
    /// Parses and validates a configuration given as YAML text.
    ///
    /// - Parameters:
    ///   - yaml: The whole file. An empty document is treated as an empty mapping (and then
    ///     reports the missing `pools` and `listeners`).
    ///   - defaultWorkers: `workers` when the file sets none, usually the number of cores;
    ///     clamped to 1...256.
    /// - Returns: The validated ``LBConfig``: pools and resolvers sorted by name, listeners and
    ///   each pool's groups in file order.
    /// - Throws: ``ConfigError`` with every problem found. A YAML syntax error is one problem with
    ///   path `""` giving libyaml's line, column and message; otherwise there is one problem per
    ///   broken rule, each at the path of the offending value.
    public static func load(yaml: String, defaultWorkers: Int) throws(ConfigError) -> LBConfig {
        let root: Node?
        if YAMLNesting.exceedsLimit(yaml) {
            throw ConfigError(problems: [
                ConfigProblem(path: "", message: "collections nest deeper than \(YAMLNesting.limit) levels")
            ])
        }
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(problems: [ConfigProblem(path: "", message: yamlErrorMessage(error))])
        }
        var decoder = RawConfigDecoder()
        let raw = decoder.decode(root)
        var validator = ConfigValidator(defaultWorkers: defaultWorkers)
        let config = validator.validate(raw)
        let problems = decoder.reader.problems.problems + validator.problems.problems
        guard problems.isEmpty else { throw ConfigError(problems: problems) }
        return config
    }

    /// Reads the file at `path` and loads it with ``load(yaml:defaultWorkers:)``.
    ///
    /// Relative paths inside the file (`state_file`, `admin.token_file`, TLS certificates and keys, `failover.vrrp.peer_sync.key_file`) are resolved against the
    /// config file's directory.
    ///
    /// - Throws: ``ConfigError``. A file that cannot be opened or read, or is not UTF-8, is one
    ///   problem with path `""` naming the file and the reason.
    public static func load(path: String, defaultWorkers: Int) throws(ConfigError) -> LBConfig {
        let text: String
        switch readTextFile(path) {
        case .success(let contents):
            text = contents
        case .failure(let reason):
            let message = "cannot read config file '\(path)': \(reason)"
            throw ConfigError(problems: [ConfigProblem(path: "", message: message)])
        }
        var config = try load(yaml: text, defaultWorkers: defaultWorkers)
        // Relative file paths in the config are relative to the config file's directory.
        if let slash = path.lastIndex(of: "/") {
            let dir = String(path[...slash])
            if let state = config.stateFile, !state.hasPrefix("/") { config.stateFile = dir + state }
            if let token = config.admin?.tokenFile, !token.hasPrefix("/") { config.admin?.tokenFile = dir + token }
            for i in config.listeners.indices {
                guard var tls = config.listeners[i].tls else { continue }
                for j in tls.certificates.indices {
                    if !tls.certificates[j].cert.hasPrefix("/") { tls.certificates[j].cert = dir + tls.certificates[j].cert }
                    if !tls.certificates[j].key.hasPrefix("/") { tls.certificates[j].key = dir + tls.certificates[j].key }
                }
                config.listeners[i].tls = tls
            }
            func resolve(_ p: String?) -> String? { p.map { $0.hasPrefix("/") ? $0 : dir + $0 } }
            for pi in config.pools.indices {
                for gi in config.pools[pi].groups.indices {
                    guard var t = config.pools[pi].groups[gi].tls else { continue }
                    t.caFile = resolve(t.caFile)
                    t.cert = resolve(t.cert)
                    t.key = resolve(t.key)
                    config.pools[pi].groups[gi].tls = t
                }
            }
            if let key = config.failover?.vrrp.peerSync?.keyFile, !key.hasPrefix("/") {
                config.failover?.vrrp.peerSync?.keyFile = dir + key
            }
        }
        // Certificates and keys are read and checked now, so `lbd check`, a start and a reload
        // refuse a broken one by path.
        var problems = config.listeners.enumerated().flatMap { i, l in
            l.tls.map { TLSContextSet.problems($0, path: "listeners[\(i)].tls") } ?? []
        }
        for pool in config.pools {
            for group in pool.groups {
                guard let t = group.tls else { continue }
                problems += BackendTLS.problems(t, path: "pools.\(pool.name).groups.\(group.name).tls")
            }
        }
        if !problems.isEmpty { throw ConfigError(problems: problems) }
        return config
    }

    /// One line for a Yams error: `line L, column C: problem (context)`, without the source snippet.
    static func yamlErrorMessage(_ error: any Error) -> String {
        guard let yamlError = error as? YamlError else { return "invalid YAML: \(error)" }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return "invalid YAML at line \(mark.line), column \(mark.column): \(problem)\(detail)"
        case .reader(let problem, let offset, _, _):
            return "invalid YAML input\(offset.map { " at byte \($0)" } ?? ""): \(problem)"
        default:
            return "invalid YAML: \(yamlError)"
        }
    }
}

/// Why a file could not be read, as text for a ``ConfigProblem``.
private struct ReadFailure: Error {
    var reason: String
}

extension ReadFailure: CustomStringConvertible {
    var description: String { reason }
}

/// The whole file as UTF-8 text, or why not. At most 16 MiB: a config is a few kilobytes, and a
/// wrong path (a device, a huge log) must not hang or exhaust memory.
private func readTextFile(_ path: String) -> Result<String, ReadFailure> {
    let limit = 16 << 20
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(ReadFailure(reason: errnoText())) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            return .failure(ReadFailure(reason: errnoText()))
        }
        if count == 0 { break }
        bytes += chunk[..<count]
        if bytes.count > limit {
            return .failure(ReadFailure(reason: "larger than \(limit >> 20) MiB"))
        }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        return .failure(ReadFailure(reason: "not valid UTF-8"))
    }
    return .success(text)
}

/// `strerror(errno)`, e.g. "No such file or directory".
private func errnoText() -> String {
    guard let message = strerror(errno) else { return "error \(errno)" }
    return String(cString: message)
}

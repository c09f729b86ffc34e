// The state file (`state_file:`): what lbd must remember across a restart: the last good set of
// every SRV group, so a restart while DNS is down serves the pool it had (consul-dns.md §2 item
// 13), and the admin overrides (weights, admin states, shares, swapped sources). Written atomically — a temp file in the same directory, fsync,
// rename, fsync of the directory — so a crash mid-write leaves the old file whole.
// Control thread only.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

struct PersistedState: Codable, Equatable {
    var version = 1
    /// Keyed by "pool/group".
    var discovery: [String: PersistedGroup] = [:]
    /// Absent in files written before the admin API could change anything.
    var overrides: AdminOverrides?
    /// The overrides' version for peer sync, and this host's node name (see PeerSync.swift).
    var sync: SyncVersion?
    var node: String?
}

struct PersistedGroup: Codable, Equatable {
    /// The SRV name the set came from; a restored set is used only for the same name.
    var srv: String
    var slots: [PersistedSlot]
}

struct PersistedSlot: Codable, Equatable {
    var slot: Int
    var target: String
    var port: UInt16
    /// Numeric host, without the port.
    var host: String
    var weight: Int
    var priority: Int
}

struct StateFile {
    let path: String

    /// The saved state, or nil when there is none or it cannot be read (the reason is returned).
    func load() -> (state: PersistedState?, problem: String?) {
        guard let data = FileManager.default.contents(atPath: path) else {
            return (nil, FileManager.default.fileExists(atPath: path) ? "cannot read \(path)" : nil)
        }
        do {
            return (try JSONDecoder().decode(PersistedState.self, from: data), nil)
        } catch {
            return (nil, "\(path) is not a valid state file: \(error)")
        }
    }

    /// Replaces the file atomically. Throws a description of the failing step.
    func save(_ state: PersistedState) throws(SystemCallError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(state) else { throw SystemCallError(call: "encode state", errno: EINVAL) }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let temp = "\(path).tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemCallError(call: "open \(temp)", errno: errno) }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        let writeErrno = errno
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok else {
            unlink(temp)
            throw SystemCallError(call: "write \(temp)", errno: writeErrno)
        }
        guard rename(temp, path) == 0 else {
            let e = errno
            unlink(temp)
            throw SystemCallError(call: "rename \(temp)", errno: e)
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}

/// The state in memory, shared by its writers (discovery, the admin API), and the file it is
/// saved to after each change. Without `state_file:` it only lives in memory.
final class StateStore {
    private let file: StateFile?
    private let logger: Logger
    var state = PersistedState()

    init(path: String?, logger: Logger) {
        file = path.map { StateFile(path: $0) }
        self.logger = logger
        if let file {
            let (state, problem) = file.load()
            if let problem { logger.error("state file not used", metadata: ["problem": "\(problem)"]) }
            if let state { self.state = state }
        }
    }

    var isPersistent: Bool { file != nil }

    /// Writes the file; a failure is logged (and returned), the state in memory stays.
    @discardableResult
    func save() -> SystemCallError? {
        guard let file else { return nil }
        do {
            try file.save(state)
            return nil
        } catch {
            logger.error("cannot write the state file", metadata: ["path": "\(file.path)", "error": "\(error)"])
            return error
        }
    }
}

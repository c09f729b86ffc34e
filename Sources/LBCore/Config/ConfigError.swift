// Errors of the configuration stage. Loading never stops at the first problem: the decoder and the
// validator append to one list, and `ConfigLoader` throws them all together so that `lbd check`
// can print every mistake in a file at once.

/// One thing wrong with a configuration file: where it is and what rule it breaks.
///
/// `path` names the offending value with dots for mapping keys and `[i]` for sequence items,
/// as in `pools.web.groups.main.static[1].weight` or `listeners[0].bind`. It is `""` for problems
/// with the file as a whole (unreadable, not YAML). `message` quotes the value and states the rule,
/// as in `0 is outside 1...256`.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    /// Where the problem is, e.g. `listeners[0].bind`; `""` for the whole file.
    public var path: String
    /// The value found and the rule it breaks.
    public var message: String

    /// Creates a problem at `path`.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `path: message`, or just `message` for a problem with the whole file.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// A configuration that could not be loaded, with every problem found in it.
///
/// Thrown by ``ConfigLoader``; `problems` is never empty and is in the order the problems were
/// found (roughly file order, then cross-reference checks).
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// Every problem found, never empty.
    public var problems: [ConfigProblem]

    /// Creates an error from the problems found.
    public init(problems: [ConfigProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Collects problems while a configuration is decoded and validated.
///
/// Not thread-safe; one instance lives for one `ConfigLoader.load` call.
struct ProblemCollector {
    private(set) var problems: [ConfigProblem] = []

    var isEmpty: Bool { problems.isEmpty }

    /// Records `message` at `path`.
    mutating func add(_ path: ConfigPath, _ message: String) {
        problems.append(ConfigProblem(path: path.description, message: message))
    }
}

/// A location in the configuration tree, rendered as `pools.web.groups[...]`-style text.
struct ConfigPath: CustomStringConvertible, Sendable {
    private var text: String

    /// The document root; renders as `""`.
    static let root = ConfigPath(text: "")

    private init(text: String) { self.text = text }

    /// The path of the value under mapping key `key`.
    func key(_ key: String) -> ConfigPath {
        ConfigPath(text: text.isEmpty ? key : "\(text).\(key)")
    }

    /// The path of item `index` of a sequence.
    func index(_ index: Int) -> ConfigPath {
        ConfigPath(text: "\(text)[\(index)]")
    }

    var description: String { text }
}

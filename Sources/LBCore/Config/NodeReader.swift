// Shape checks over a `Yams.Node` tree, shared by the raw-config decoder. Each read either returns
// a value or records a problem at the exact path and returns nil; nothing here throws, so one pass
// over the file finds every shape problem.

import Yams

/// The keys of one YAML mapping that was checked against the keys allowed at its place.
struct FieldSet {
    /// Where the mapping is.
    let path: ConfigPath
    private let values: [String: Node]

    init(path: ConfigPath, values: [String: Node]) {
        self.path = path
        self.values = values
    }

    /// The value under `key`, including an explicit null (`key:`); nil if the key is absent.
    subscript(key: String) -> Node? { values[key] }

    /// True if `key` is present with a non-null value.
    func has(_ key: String) -> Bool { values[key].map { !$0.isNull } ?? false }
}

/// Reads YAML nodes while collecting shape problems.
///
/// Null values (`key:`, `key: ~`) read as absent. Integers are plain decimal with an optional sign
/// and `_` separators; booleans are `true/false/yes/no/on/off`; text is any scalar.
struct NodeReader {
    var problems = ProblemCollector()

    /// A mapping's pairs in file order, with text keys. Reports a non-mapping, a key that is not
    /// text, and a key written twice (only the first is kept).
    mutating func entries(_ node: Node, at path: ConfigPath) -> [(key: String, value: Node)]? {
        guard case .mapping(let mapping) = node else {
            problems.add(path, "expected a mapping, found \(node.kindDescription)")
            return nil
        }
        var result: [(key: String, value: Node)] = []
        var firstLines: [String: Int] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                problems.add(path, "a key must be text, found \(keyNode.kindDescription)")
                continue
            }
            let key = scalar.string
            if let firstLine = firstLines[key] {
                problems.add(path.key(key), "duplicate key '\(key)' (first written on line \(firstLine))")
                continue
            }
            firstLines[key] = scalar.mark?.line ?? 0
            result.append((key, value))
        }
        return result
    }

    /// A mapping with a fixed set of keys. Reports everything ``entries(_:at:)`` does, plus each key
    /// not in `allowed`, with a suggestion when it looks like a typo of an allowed key.
    mutating func fields(_ node: Node, at path: ConfigPath, allowed: [String]) -> FieldSet? {
        guard let entries = entries(node, at: path) else { return nil }
        var values: [String: Node] = [:]
        for (key, value) in entries {
            if allowed.contains(key) {
                values[key] = value
            } else if let suggestion = closestKey(to: key, in: allowed) {
                problems.add(path.key(key), "unknown key '\(key)'; did you mean '\(suggestion)'?")
            } else if allowed.isEmpty {
                problems.add(path.key(key), "unknown key '\(key)'; no keys are allowed here")
            } else {
                let list = allowed.joined(separator: ", ")
                problems.add(path.key(key), "unknown key '\(key)'; expected one of: \(list)")
            }
        }
        return FieldSet(path: path, values: values)
    }

    /// `fields[key]` read as a mapping with its own allowed keys; nil if absent or null.
    mutating func fields(_ key: String, in parent: FieldSet, allowed: [String]) -> FieldSet? {
        guard let node = parent[key], !node.isNull else { return nil }
        return fields(node, at: parent.path.key(key), allowed: allowed)
    }

    /// Reports `key` as missing from `fields` when it is absent or null.
    mutating func require(_ key: String, in fields: FieldSet) {
        if !fields.has(key) {
            problems.add(fields.path.key(key), "required key is missing")
        }
    }

    /// The items of a sequence; nil (and a problem) if it is something else, nil if absent or null.
    mutating func items(_ node: Node?, at path: ConfigPath) -> [Node]? {
        guard let node, !node.isNull else { return nil }
        guard case .sequence(let sequence) = node else {
            problems.add(path, "expected a list, found \(node.kindDescription)")
            return nil
        }
        return Array(sequence)
    }

    /// A scalar's text; nil (and a problem naming `expected`) for a mapping or a list, nil if absent
    /// or null.
    mutating func text(_ node: Node?, at path: ConfigPath, expected: String = "text") -> String? {
        guard let node, !node.isNull else { return nil }
        guard case .scalar(let scalar) = node else {
            problems.add(path, "expected \(expected), found \(node.kindDescription)")
            return nil
        }
        return scalar.string
    }

    /// A decimal integer; nil (and a problem) for anything else, nil if absent or null.
    mutating func int(_ node: Node?, at path: ConfigPath) -> Int? {
        guard let text = text(node, at: path, expected: "an integer") else { return nil }
        let digits = text.filter { $0 != "_" }
        let unsigned = digits.hasPrefix("-") || digits.hasPrefix("+") ? digits.dropFirst() : Substring(digits)
        guard !unsigned.isEmpty, unsigned.allSatisfy(\.isASCIIDigit), let value = Int(digits) else {
            problems.add(path, "expected an integer, found '\(text)'")
            return nil
        }
        return value
    }

    /// A boolean; nil (and a problem) for anything else, nil if absent or null.
    mutating func bool(_ node: Node?, at path: ConfigPath) -> Bool? {
        guard let text = text(node, at: path, expected: "true or false") else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problems.add(path, "expected true or false, found '\(text)'")
            return nil
        }
    }

    /// `fields[key]` as text.
    mutating func text(_ key: String, in fields: FieldSet) -> String? {
        text(fields[key], at: fields.path.key(key))
    }

    /// `fields[key]` as an integer.
    mutating func int(_ key: String, in fields: FieldSet) -> Int? {
        int(fields[key], at: fields.path.key(key))
    }

    /// `fields[key]` as a boolean.
    mutating func bool(_ key: String, in fields: FieldSet) -> Bool? {
        bool(fields[key], at: fields.path.key(key))
    }
}

extension Node {
    /// True for an explicit null: `key:`, `~`, `null` (unquoted).
    var isNull: Bool { tag.description == Tag.Name.null.rawValue }

    /// `'text'`, `a mapping` or `a list`, for messages.
    var kindDescription: String {
        switch self {
        case .scalar(let scalar): "'\(scalar.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }
}

/// The allowed key within two edits of `key`, if exactly one is closest.
private func closestKey(to key: String, in allowed: [String]) -> String? {
    let scored = allowed.map { (key: $0, distance: editDistance(key, $0)) }.filter { $0.distance <= 2 }
    guard let best = scored.min(by: { $0.distance < $1.distance }) else { return nil }
    return scored.filter { $0.distance == best.distance }.count == 1 ? best.key : nil
}

/// Levenshtein distance over characters, with adjacent transpositions counted as one edit.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { table[i][0] = i }
    for j in 0...b.count { table[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            var best = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                best = min(best, table[i - 2][j - 2] + 1)
            }
            table[i][j] = best
        }
    }
    return table[a.count][b.count]
}

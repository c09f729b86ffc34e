// Value checks shared by every section: ranges, durations, addresses, shares, names, choices and
// references. Each quotes the value it rejects and states the rule in the message.

extension ConfigValidator {
    /// `value` if within `range`, `fallback` if absent; nil (and a problem) if out of range.
    mutating func int(_ value: Int?, at path: ConfigPath, in range: ClosedRange<Int>, default fallback: Int) -> Int? {
        guard let value else { return fallback }
        guard range.contains(value) else {
            problems.add(path, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    /// A positive duration, `fallback` if absent; nil (and a problem) if malformed or not above zero.
    mutating func duration(
        _ text: String?, at path: ConfigPath, default fallback: Duration, allowZero: Bool = false
    ) -> Duration? {
        guard let text else { return fallback }
        guard let value = parseDuration(text) else {
            problems.add(path, "'\(text)' is not a duration; write a number and a unit (us, ms, s, m, h), e.g. 500ms")
            return nil
        }
        guard value > .zero || (allowZero && value == .zero) else {
            problems.add(path, "\(text) must be greater than 0")
            return nil
        }
        return value
    }

    /// A numeric `host:port` with port 1...65535; nil (and a problem) otherwise.
    mutating func address(_ text: String, at path: ConfigPath) -> SocketAddress? {
        guard let address = parseSocketAddress(text, allowPortZero: true) else {
            problems.add(path, "'\(text)' is not a numeric address with a port, e.g. 127.0.0.1:80 or [::1]:80")
            return nil
        }
        guard address.port != 0 else {
            problems.add(path, "port 0 in \(text) is outside 1...65535")
            return nil
        }
        return address
    }

    /// A percentage 0...100 with at most two decimals; nil (and a problem) otherwise.
    mutating func share(_ text: String, at path: ConfigPath) -> Share? {
        if let share = parseShare(text) { return share }
        let digits = text.hasSuffix("%") ? text.dropLast() : Substring(text)
        if DecimalText(digits, maxFractionDigits: 2) != nil {
            problems.add(path, "\(text) is outside 0...100%")
        } else {
            problems.add(path, "'\(text)' is not a percentage; write 0...100 with at most 2 decimals, e.g. 5 or 2.5%")
        }
        return nil
    }

    /// Checks a pool, group, resolver or listener name against `[A-Za-z0-9_.-]+`; true if it passes.
    @discardableResult
    mutating func name(_ name: String, at path: ConfigPath) -> Bool {
        let valid =
            !name.isEmpty
            && name.unicodeScalars.allSatisfy { scalar in
                switch scalar {
                case "A"..."Z", "a"..."z", "0"..."9", "_", ".", "-": true
                default: false
                }
            }
        if !valid {
            problems.add(path, "'\(name)' is not a valid name; use letters, digits, '_', '.' and '-'")
        }
        return valid
    }

    /// A file path as written (relative paths are resolved by the caller); nil (and a problem) if empty.
    mutating func filePath(_ text: String, at path: ConfigPath) -> String? {
        guard !text.isEmpty, !text.contains("\0") else {
            problems.add(path, "'\(text)' is not a usable file path; it must be non-empty text without NUL")
            return nil
        }
        return text
    }

    /// One of `options` by its raw value; nil (and a problem listing the options) otherwise.
    mutating func choice<Option: RawRepresentable<String>>(
        _ text: String, at path: ConfigPath, what: String, among options: [Option]
    ) -> Option? {
        if let option = options.first(where: { $0.rawValue == text }) { return option }
        let list = options.map(\.rawValue).joined(separator: ", ")
        problems.add(path, "'\(text)' is not a \(what); expected one of: \(list)")
        return nil
    }

    /// Reports `name` if it is not among the `defined` names of `kind` (pool, resolver). `defined` is
    /// nil when that section was malformed (already reported); then nothing can be checked.
    mutating func reference(_ name: String, at path: ConfigPath, kind: String, defined: [String]?) {
        guard let defined, !defined.contains(name) else { return }
        let known = defined.isEmpty ? "none are defined" : "defined: \(defined.sorted().joined(separator: ", "))"
        problems.add(path, "no \(kind) named '\(name)'; \(known)")
    }
}

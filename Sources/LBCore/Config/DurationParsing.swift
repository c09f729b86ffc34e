// Text forms of durations and shares used in the config file and by the admin API.
// Both are parsed with exact integer arithmetic: `0.01` is one basis point and `1.5s` is
// 1_500_000_000 ns, with no binary floating point in between.

/// Parses a duration written as a decimal number and a unit: `250us`, `500ms`, `2s`, `1.5s`, `5m`, `1h`.
///
/// Accepts units `us`, `ms`, `s`, `m`, `h` and a non-negative decimal number with at most nine
/// fraction digits, no sign, no spaces. Rejects `""`, `"-1s"`, `"5"` (no unit), `"abc"`, `"1.s"`,
/// values finer than a nanosecond (`"0.5ns"`-like results) and values beyond `Int64` nanoseconds.
/// `"0s"` parses to `.zero`; callers that need a positive duration check that themselves.
/// Pure; safe from any thread.
public func parseDuration(_ text: String) -> Duration? {
    let unitStart = text.firstIndex { $0.isLetter } ?? text.endIndex
    let unitNanoseconds: Int64
    switch text[unitStart...] {
    case "us": unitNanoseconds = 1_000
    case "ms": unitNanoseconds = 1_000_000
    case "s": unitNanoseconds = 1_000_000_000
    case "m": unitNanoseconds = 60_000_000_000
    case "h": unitNanoseconds = 3_600_000_000_000
    default: return nil
    }
    guard let number = DecimalText(text[..<unitStart], maxFractionDigits: 9),
        let nanoseconds = number.scaled(by: unitNanoseconds)
    else { return nil }
    return .nanoseconds(nanoseconds)
}

/// Parses a traffic share: a percentage `0...100` with at most two decimals, with or without `%`.
///
/// `"95"`, `"95%"`, `"5.5%"`, `"0.01"` parse to 9500, 9500, 550 and 1 basis points. Rejects
/// `""`, negative numbers, more than two decimals (`"0.001"`), values above 100, exponents and
/// spaces. Pure; safe from any thread.
public func parseShare(_ text: String) -> Share? {
    let digits = text.hasSuffix("%") ? text.dropLast() : Substring(text)
    guard let number = DecimalText(digits, maxFractionDigits: 2),
        let basisPoints = number.scaled(by: 100),
        basisPoints <= 10_000
    else { return nil }
    return Share(basisPoints: Int(basisPoints))
}

extension Share {
    /// The share as a percentage without trailing zeros: `95%`, `5.5%`, `0.01%`.
    public var percentText: String {
        let whole = basisPoints / 100
        let fraction = basisPoints % 100
        if fraction == 0 { return "\(whole)%" }
        let fractionText = fraction % 10 == 0 ? "\(fraction / 10)" : (fraction < 10 ? "0\(fraction)" : "\(fraction)")
        return "\(whole).\(fractionText)%"
    }
}

/// An unsigned decimal number as text, `digits[.digits]`, kept as integers so it scales exactly.
struct DecimalText {
    /// The digits before the point.
    var whole: Int128
    /// The digits after the point, as an integer: `"1.25"` has 25 here and `fractionDigits` 2.
    var fraction: Int128
    var fractionDigits: Int

    /// Parses `12`, `12.5`, `0.01`; rejects signs, exponents, `"1."`, `".5"`, empty text, more than
    /// `maxFractionDigits` digits after the point and more than 30 digits before it.
    init?(_ text: Substring, maxFractionDigits: Int) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholeText = parts.first, (1...30).contains(wholeText.count) else { return nil }
        let fractionText = parts.count == 2 ? parts[1] : ""
        guard parts.count == 1 || !fractionText.isEmpty, fractionText.count <= maxFractionDigits,
            let whole = Self.value(of: wholeText), let fraction = Self.value(of: fractionText)
        else { return nil }
        self.whole = whole
        self.fraction = fraction
        self.fractionDigits = fractionText.count
    }

    /// The number times `factor`, or nil if that is not a whole number or does not fit `Int64`.
    func scaled(by factor: Int64) -> Int64? {
        var divisor: Int128 = 1
        for _ in 0..<fractionDigits { divisor *= 10 }
        let fractionPart = fraction * Int128(factor)
        guard fractionPart % divisor == 0 else { return nil }
        let (product, overflow) = whole.multipliedReportingOverflow(by: Int128(factor))
        guard !overflow else { return nil }
        return Int64(exactly: product + fractionPart / divisor)
    }

    /// ASCII digits as a number (0 for empty text); nil for any other character. At most 30 digits
    /// are passed in, so this cannot overflow `Int128`.
    private static func value(of digits: Substring) -> Int128? {
        var value: Int128 = 0
        for character in digits {
            guard character.isASCIIDigit, let digit = character.wholeNumberValue else { return nil }
            value = value * 10 + Int128(digit)
        }
        return value
    }
}

extension Character {
    /// `0`...`9` only; `Character.isNumber` also accepts other scripts' digits and fractions.
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

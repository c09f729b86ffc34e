// Text forms used by the config file and the admin API: durations, shares, socket addresses.

import Testing

@testable import LBCore

@Suite("Config value parsing")
struct ConfigParsingTests {
    @Test(
        "parseDuration accepts a number and a unit",
        arguments: [
            ("250us", Duration.microseconds(250)),
            ("500ms", .milliseconds(500)),
            ("2s", .seconds(2)),
            ("1.5s", .milliseconds(1500)),
            ("0.25ms", .microseconds(250)),
            ("1m", .seconds(60)),
            ("5m", .seconds(300)),
            ("1h", .seconds(3600)),
            ("0.5h", .seconds(1800)),
            ("0s", .zero),
            ("0.000000001s", .nanoseconds(1)),
            ("10000h", .seconds(36_000_000)),
        ])
    func goodDurations(text: String, expected: Duration) {
        #expect(parseDuration(text) == expected)
    }

    @Test(
        "parseDuration rejects malformed text",
        arguments: [
            "", "-1s", "+1s", "5", "abc", "s", "1.s", ".5s", "1,5s", "1 s", " 1s", "1s ", "1sec", "1S", "1d",
            "1ns", "1e3ms", "0x10s", "1.0000000001s", "0.0001us", "99999999999999999999h", "1s2ms",
        ])
    func badDurations(text: String) {
        #expect(parseDuration(text) == nil)
    }

    @Test(
        "parseShare reads percentages with up to two decimals",
        arguments: [
            ("95", 9500), ("95%", 9500), ("5", 500), ("0", 0), ("0%", 0), ("100", 10_000), ("100%", 10_000),
            ("0.01", 1), ("0.01%", 1), ("5.5", 550), ("5.25%", 525), ("99.99", 9999), ("100.00", 10_000),
            ("007", 700),
        ])
    func goodShares(text: String, basisPoints: Int) {
        #expect(parseShare(text) == Share(basisPoints: basisPoints))
    }

    @Test(
        "parseShare rejects anything else",
        arguments: [
            "", "%", "-1", "-0.5%", "100.01", "101", "150%", "0.001", "5.123%", "1e2", "5 %", " 5", "5%%", "abc",
            "5.", ".5", "0x10", "95 percent",
        ])
    func badShares(text: String) {
        #expect(parseShare(text) == nil)
    }

    @Test(
        "Share.percentText drops trailing zeros",
        arguments: [
            (9500, "95%"), (550, "5.5%"), (525, "5.25%"), (1, "0.01%"), (10, "0.1%"), (0, "0%"), (10_000, "100%"),
        ])
    func percentText(basisPoints: Int, expected: String) {
        #expect(Share(basisPoints: basisPoints).percentText == expected)
    }

    @Test(
        "parseSocketAddress accepts numeric IPv4 and bracketed IPv6",
        arguments: [
            ("127.0.0.1:80", "127.0.0.1", 80),
            ("0.0.0.0:8080", "0.0.0.0", 8080),
            ("10.1.2.3:65535", "10.1.2.3", 65535),
            ("[::1]:80", "::1", 80),
            ("[::]:443", "::", 443),
            ("[0:0:0:0:0:0:0:1]:80", "::1", 80),
            ("[2001:DB8::1]:8600", "2001:db8::1", 8600),
            ("[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1),
        ] as [(String, String, UInt16)])
    func goodAddresses(text: String, host: String, port: UInt16) {
        #expect(parseSocketAddress(text) == SocketAddress(host: host, port: port))
    }

    @Test(
        "parseSocketAddress rejects names, bad hosts and bad ports",
        arguments: [
            "", "127.0.0.1", "127.0.0.1:", ":80", "localhost:80", "example.com:443", "127.0.0.1:0", "127.0.0.1:65536",
            "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:8o", "127.0.0.1:080080", "256.0.0.1:80", "1.2.3:80",
            "01.2.3.4:80", "::1:80", "[::1]", "[::1]80", "[::1:80", "[127.0.0.1]:80", "[fe80::1%eth0]:80",
            "[::1]:80x", " 127.0.0.1:80", "127.0.0.1 :80", "127.0.0.1:80\u{0}",
        ])
    func badAddresses(text: String) {
        #expect(parseSocketAddress(text) == nil)
    }

    @Test("parseSocketAddress allows port 0 only when asked")
    func portZero() {
        #expect(parseSocketAddress("127.0.0.1:0") == nil)
        #expect(parseSocketAddress("127.0.0.1:0", allowPortZero: true) == SocketAddress(host: "127.0.0.1", port: 0))
        #expect(parseSocketAddress("[::1]:0", allowPortZero: true) == SocketAddress(host: "::1", port: 0))
    }

    @Test("SocketAddress prints IPv6 hosts in brackets")
    func addressDescription() {
        #expect(SocketAddress(host: "::1", port: 80).description == "[::1]:80")
        #expect(SocketAddress(host: "127.0.0.1", port: 80).description == "127.0.0.1:80")
    }
}

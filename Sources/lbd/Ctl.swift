// `lbd ctl`: a client for the admin API (README "Admin API"). Reads the admin address and token
// file from the config (or --admin / --token-file), sends one request per command, and prints a
// readable table, or the server's JSON with --json. Exit 0 on success, 1 when the server refused
// (its reason on stderr), 2 when it cannot be reached.

import ArgumentParser
import Foundation
import LBCore

#if canImport(Glibc)
import Glibc
#endif

struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Read and change a running lbd through its admin API.",
        subcommands: [
            CtlPools.self, CtlWeight.self, CtlState.self, CtlShare.self,
            CtlSwap.self, CtlPromote.self, CtlRevert.self, CtlVRRP.self,
        ])
    @OptionGroup var options: CtlOptions
}

/// Where the admin API is and how to authenticate, shared by every `ctl` command.
struct CtlOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The config file to read admin.listen and admin.token_file from.")
    var config: String = "conf/lbd.yaml"
    @Option(help: "The admin address, HOST:PORT (default: admin.listen from the config).")
    var admin: String?
    @Option(name: .customLong("token-file"), help: "The file holding the bearer token (default: admin.token_file).")
    var tokenFile: String?
    @Flag(help: "Print the server's JSON as it is.")
    var json = false

    func validate() throws {
        if let admin, parseSocketAddress(admin) == nil {
            throw ValidationError("--admin: \(admin) is not a numeric HOST:PORT such as 127.0.0.1:9901 or [::1]:9901")
        }
    }

    /// Sends one request and returns the body of a 2xx answer; exits 1 (the server refused, its
    /// reason on stderr) or 2 (no address or token, or no answer) otherwise.
    func call(_ method: String, _ path: String, body: Data? = nil) throws -> Data {
        var address = admin.flatMap { parseSocketAddress($0) }
        var token = tokenFile
        if address == nil || (token == nil && method != "GET") {
            do {
                let loaded = try ConfigLoader.load(path: config, defaultWorkers: 1)
                address = address ?? loaded.admin?.listen
                token = token ?? loaded.admin?.tokenFile
            } catch {
                // Only fatal when the address was to come from the file; a write without a token
                // goes on and the server says why it refuses.
                if address == nil {
                    printErr("lbd ctl: no admin address: pass --admin HOST:PORT, or a valid --config (\(config)):")
                    for p in error.problems { printErr("  \(p)") }
                    throw ExitCode(2)
                }
            }
        }
        guard let address else {
            printErr("lbd ctl: \(config) has no admin: section; pass --admin HOST:PORT")
            throw ExitCode(2)
        }
        var headers: [(String, String)] = []
        if method != "GET", let token {
            guard let text = try? String(contentsOfFile: token, encoding: .utf8),
                let line = text.split(whereSeparator: \.isNewline).first
            else {
                printErr("lbd ctl: cannot read a token from \(token)")
                throw ExitCode(2)
            }
            headers.append(("Authorization", "Bearer \(line.trimmingCharacters(in: .whitespaces))"))
        }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let reply: AdminClient.Reply
        do {
            reply = try AdminClient.send(
                to: address, method: method, path: path, headers: headers, body: body ?? Data())
        } catch {
            printErr("lbd ctl: cannot reach the admin API at \(address): \(error)")
            throw ExitCode(2)
        }
        guard (200..<300).contains(reply.status) else {
            let doc = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any]
            let text = String(decoding: reply.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let reason = doc?["error"] as? String ?? (text.isEmpty ? reply.reason : text)
            printErr("lbd ctl: \(reply.status): \(reason)")
            throw ExitCode(1)
        }
        return reply.body
    }

    /// `call` with a JSON object body.
    func call(_ method: String, _ path: String, json object: [String: Any]) throws -> Data {
        try call(method, path, body: try JSONSerialization.data(withJSONObject: object))
    }

    /// Prints a pool (or {"pools": [...]}) answer: the JSON with --json, else a table.
    func show(_ data: Data) {
        if json {
            print(String(decoding: data, as: UTF8.self), terminator: "")
            return
        }
        guard let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let pools = (doc["pools"] as? [[String: Any]]) ?? [doc]
        print(PoolTable.render(pools), terminator: "")
    }
}

/// Path segments are sent percent-encoded (an IPv6 backend's brackets, for one).
func pathSegment(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? s
}

struct CtlPools: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pools", abstract: "Show pools, groups and backends.")
    @OptionGroup var options: CtlOptions
    @Argument(help: "Only this pool.") var pool: String?

    func run() throws {
        options.show(try options.call("GET", pool.map { "/v1/pools/\(pathSegment($0))" } ?? "/v1/pools"))
    }
}

struct CtlWeight: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "weight", abstract: "Set a backend's weight (1...256).")
    @OptionGroup var options: CtlOptions
    @Argument var pool: String
    @Argument(help: "The backend's address, HOST:PORT.") var backend: String
    @Argument var weight: Int

    func run() throws {
        options.show(try options.call(
            "PUT", "/v1/pools/\(pathSegment(pool))/backends/\(pathSegment(backend))", json: ["weight": weight]))
    }
}

struct CtlState: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Set a backend's admin state: ready, drain (no new requests) or maint (no checks either).")
    @OptionGroup var options: CtlOptions
    @Argument var pool: String
    @Argument(help: "The backend's address, HOST:PORT.") var backend: String
    @Argument(help: "ready, drain or maint") var state: String

    func run() throws {
        options.show(try options.call(
            "PUT", "/v1/pools/\(pathSegment(pool))/backends/\(pathSegment(backend))", json: ["state": state]))
    }
}

struct CtlShare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share", abstract: "Give a group exactly PERCENT of its pool (0...100, 0.01 steps); the other groups fill the rest.")
    @OptionGroup var options: CtlOptions
    @Argument var pool: String
    @Argument var group: String
    @Argument(help: "5, 2.5 or 2.5%") var percent: String

    func validate() throws {
        guard Self.numberLiteral(percent) != nil else {
            throw ValidationError("PERCENT must be a number such as 5, 2.5 or 2.5%, not \(percent)")
        }
    }

    func run() throws {
        // Written as typed (a JSON number, as the API documents), so no binary rounding creeps in.
        let body = Data("{\"share\": \(Self.numberLiteral(percent)!)}".utf8)
        options.show(try options.call("PUT", "/v1/pools/\(pathSegment(pool))/groups/\(pathSegment(group))", body: body))
    }

    /// "2.5", "2.5%", "007" → a JSON number literal ("2.5", "2.5", "7"); nil for anything else.
    static func numberLiteral(_ text: String) -> String? {
        var t = Substring(text)
        if t.hasSuffix("%") { t = t.dropLast() }
        let parts = t.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy({ ("0"..."9").contains($0) }),
            parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy({ ("0"..."9").contains($0) }))
        else { return nil }
        let digits = whole.drop(while: { $0 == "0" })
        return (digits.isEmpty ? "0" : String(digits)) + (parts.count == 2 ? ".\(parts[1])" : "")
    }
}

struct CtlSwap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swap", abstract: "Replace a group's source: an SRV name, or a static list (make before break).")
    @OptionGroup var options: CtlOptions
    @Argument var pool: String
    @Argument var group: String
    @Option(help: "The SRV name, e.g. _web._tcp.service.consul.") var srv: String?
    @Option var resolver: String?
    @Option var slots: Int?
    @Option(name: .customLong("static"), parsing: .upToNextOption, help: "ADDRESS or ADDRESS=WEIGHT, one or more.")
    var backends: [String] = []

    func validate() throws {
        guard (srv == nil) != backends.isEmpty else {
            throw ValidationError("give exactly one of --srv NAME and --static ADDRESS...")
        }
    }

    func run() throws {
        var body: [String: Any] = [:]
        if let srv {
            body["srv"] = srv
            if let resolver { body["resolver"] = resolver }
            if let slots { body["slots"] = slots }
        } else {
            body["static"] = backends.map { entry -> Any in
                let parts = entry.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let w = Int(parts[1]) else { return entry }
                return ["address": String(parts[0]), "weight": w]
            }
        }
        options.show(try options.call("PUT", "/v1/pools/\(pathSegment(pool))/groups/\(pathSegment(group))", json: body))
    }
}

struct CtlPromote: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote", abstract: "The group takes the whole share; the pool's other groups drain.")
    @OptionGroup var options: CtlOptions
    @Argument var pool: String
    @Argument var group: String

    func run() throws {
        options.show(try options.call("POST", "/v1/pools/\(pathSegment(pool))/promote", json: ["group": group]))
    }
}

struct CtlRevert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert", abstract: "The group (default: the one promoted last) goes back to 0%; the others get the file's shares.")
    @OptionGroup var options: CtlOptions
    @Argument var pool: String
    @Argument var group: String?

    func run() throws {
        options.show(try options.call(
            "POST", "/v1/pools/\(pathSegment(pool))/revert", json: group.map { ["group": $0] } ?? [:]))
    }
}

struct CtlVRRP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vrrp", abstract: "Show the pair's state.")
    @OptionGroup var options: CtlOptions

    func run() throws {
        let data = try options.call("GET", "/v1/vrrp")
        guard !options.json, let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any], s["enabled"] as? Bool == true else {
            print(String(decoding: data, as: UTF8.self), terminator: "")
            return
        }
        func text(_ key: String) -> String { s[key].map { "\($0)" } ?? "-" }
        print("role \(text("role")) (priority \(text("effective_priority")) of \(text("priority")), \(text("mode")), vrid \(text("vrid")) on \(text("interface")))")
        print("master \(s["master_address"] as? String ?? "-") priority \(s["master_priority"].map { "\($0)" } ?? "-"), advert interval \(text("master_advert_interval_ms")) ms")
        print("virtual IPs \((s["virtual_ips"] as? [String] ?? []).joined(separator: " "))")
        for t in (s["transitions"] as? [[String: Any]] ?? []).suffix(5) {
            print("  \(t["from"] ?? "?") -> \(t["to"] ?? "?"): \(t["reason"] ?? "")")
        }
        if let c = s["counters"] as? [String: Any] {
            print("adverts sent \(c["sent"] ?? 0), received \(c["received"] ?? 0); dropped \(c["dropped"] ?? [:]); mismatches \(c["mismatches"] ?? [:])")
        }
        if let p = s["peer_sync"] as? [String: Any] {
            print("peer sync with \(p["peer"] ?? "?"): \(p["exchanges"] ?? 0) exchanges, \(p["failures"] ?? 0) failures, last error \(p["last_error"] ?? "none")")
        }
    }
}

/// Pools as aligned text: a line per group, then its backends.
enum PoolTable {
    static func render(_ pools: [[String: Any]]) -> String {
        var rows: [[String]] = [[
            "POOL", "GROUP", "SHARE", "BACKEND", "DISCOVERY", "HEALTH", "ADMIN", "STATE", "IN", "WEIGHT", "INFLIGHT", "REQUESTS", "5XX",
        ]]
        for pool in pools {
            let name = pool["name"] as? String ?? "?"
            for group in pool["groups"] as? [[String: Any]] ?? [] {
                let g = group["name"] as? String ?? "?"
                var share = "\(number(group["share"]))%"
                if let configured = group["configured_share"], number(configured) != number(group["share"]) {
                    share += " (file \(number(configured))%)"
                }
                let source = group["source"] as? String ?? ""
                rows.append([name, g, share, "source: \(source)" + ((group["capped"] as? Bool) == true ? " CAPPED" : "")]
                    + Array(repeating: "", count: 9))
                for b in group["backends"] as? [[String: Any]] ?? [] {
                    let responses = b["responses"] as? [String: Any]
                    rows.append([
                        "", "", "", b["address"] as? String ?? b["id"] as? String ?? "?",
                        text(b["discovery"]), text(b["health"]), text(b["admin"]), text(b["state"]),
                        (b["in_rotation"] as? Bool) == true ? "yes" : "no", text(b["weight"]), text(b["in_flight"]),
                        text(b["requests"]), text(responses?["5xx"]),
                    ])
                }
            }
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in
            // Only trailing blanks go: a backend row's empty pool/group/share cells keep it under BACKEND.
            String(
                row.enumerated().map { i, cell in cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").reversed().drop(while: { $0 == " " }).reversed())
        }.joined(separator: "\n") + "\n"
    }

    private static func text(_ v: Any?) -> String {
        switch v {
        case nil: "-"
        case let s as String: s
        case let n as NSNumber: n.stringValue
        default: "\(v!)"
        }
    }

    private static func number(_ v: Any?) -> String {
        guard let n = v as? NSNumber else { return "-" }
        let d = n.doubleValue
        return d == d.rounded() ? String(Int(d)) : String(format: "%.2f", d)
    }
}

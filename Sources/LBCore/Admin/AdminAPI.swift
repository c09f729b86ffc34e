// The admin API's routes (DESIGN.md section 9): reads need nothing; writes need the bearer token,
// are checked whole, and go to the host as one new set of overrides, which it validates against the
// running config, saves to the state file and applies as one new snapshot. GET never changes
// anything. Answers: 400 with the reason for bad input, 401 without the right token, 403 when no
// token is configured, 404 for an unknown path, pool, group or backend, 405 with `Allow` for a
// wrong method, 409 for a change that cannot apply, 415 for a body that is not JSON.
// Control thread only.

import Foundation

/// What the admin API changes and reads: the server.
protocol AdminHost: AnyObject {
    /// The config as the file has it.
    var fileConfig: LBConfig { get }
    /// The config in effect: the file's with the overrides applied.
    var runningConfig: LBConfig { get }
    var adminOverrides: AdminOverrides { get }
    /// Validates, saves and applies `overrides`; nil when done.
    func commit(_ overrides: AdminOverrides, reason: String) -> AdminChangeError?
    /// Reads every TLS listener's certificate and key files again; nil when all were replaced.
    func reloadTLS() -> AdminChangeError?
}

struct AdminRequest {
    var method: String
    var target: String
    var authorization: String?
    var contentType: String?
    var body: [UInt8]
    /// The Host and Origin fields (A6: DNS rebinding and browser requests).
    var hostField: String? = nil
    var origin: String? = nil
}

struct AdminReply {
    var status: Int
    var contentType = "application/json"
    var body: String
    var headers: [(String, String)] = []

    static func error(_ status: Int, _ message: String) -> AdminReply {
        AdminReply(status: status, body: "{\"error\": \(jsonString(message))}\n")
    }
}

final class AdminAPI {
    private unowned let host: AdminHost
    private let views: AdminViews
    /// The bearer token writes need; nil: writes are refused (no token file).
    private let token: [UInt8]?
    private let statusPage: () -> String
    /// Largest request body accepted.
    static let maxBody = 65_536

    init(host: AdminHost, views: AdminViews, token: String?, statusPage: @escaping () -> String) {
        self.host = host
        self.views = views
        self.token = token.map { Array($0.utf8) }
        self.statusPage = statusPage
    }

    /// The route a path names, and the methods it takes.
    private enum Route {
        case page, healthz, metrics, vrrp, pools
        case pool(String)
        case backend(pool: String, address: String)
        case group(pool: String, group: String)
        case promote(String)
        case revert(String)
        case tlsReload

        var methods: [String] {
            switch self {
            case .page, .healthz, .metrics, .vrrp, .pools, .pool: ["GET", "HEAD"]
            case .backend, .group: ["PUT"]
            case .promote, .revert, .tlsReload: ["POST"]
            }
        }
    }

    private func route(_ path: String) -> Route? {
        switch path {
        case "/": return .page
        case "/healthz": return .healthz
        case "/metrics": return .metrics
        case "/v1/vrrp": return .vrrp
        case "/v1/tls/reload": return .tlsReload
        case "/v1/pools", "/v1/pools/": return .pools
        default: break
        }
        guard path.hasPrefix("/v1/pools/") else { return nil }
        let parts = path.dropFirst("/v1/pools/".count).split(separator: "/", omittingEmptySubsequences: false)
            .map { String($0).removingPercentEncoding ?? String($0) }
        guard parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        switch parts.count {
        case 1: return .pool(parts[0])
        case 2 where parts[1] == "promote": return .promote(parts[0])
        case 2 where parts[1] == "revert": return .revert(parts[0])
        case 3 where parts[1] == "backends": return .backend(pool: parts[0], address: parts[2])
        case 3 where parts[1] == "groups": return .group(pool: parts[0], group: parts[2])
        default: return nil
        }
    }

    /// Set when the endpoint listens on loopback: then a Host naming anything but a loopback
    /// address or localhost is a DNS-rebinding page in a browser, refused (A6).
    var loopbackOnly = false

    func handle(_ request: AdminRequest) -> AdminReply {
        if let refusal = refuseBrowser(request) { return refusal }
        let path = request.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.target
        guard let route = route(path) else { return .error(404, "no such path: \(path)") }
        guard route.methods.contains(request.method) else {
            var reply = AdminReply.error(405, "\(request.method) is not allowed here; use \(route.methods.joined(separator: " or "))")
            reply.headers.append(("Allow", route.methods.joined(separator: ", ")))
            return reply
        }
        switch route {
        case .page: return AdminReply(status: 200, contentType: "text/html; charset=utf-8", body: statusPage())
        case .healthz: return AdminReply(status: 200, contentType: "text/plain", body: "ok\n")
        case .metrics: return AdminReply(status: 200, contentType: "text/plain; version=0.0.4", body: views.metrics())
        case .vrrp: return AdminReply(status: 200, body: views.vrrpJSON())
        case .pools: return AdminReply(status: 200, body: views.poolsJSON())
        case .pool(let name):
            guard let body = views.poolJSON(name) else { return .error(404, "no pool named \(name)") }
            return AdminReply(status: 200, body: body)
        default: break
        }
        if let refusal = authorize(request) { return refusal }
        if case .tlsReload = route {
            if let e = host.reloadTLS() { return .error(e.status, e.message) }
            return AdminReply(status: 200, body: "{\"reloaded\": true}\n")
        }
        do throws(AdminChangeError) {
            let fields = try parseBody(request)
            let change: Change
            switch route {
            case .backend(let pool, let address): change = try setBackend(pool: pool, address: address, fields)
            case .group(let pool, let group): change = try setGroup(pool: pool, group: group, fields)
            case .promote(let pool): change = try promote(pool: pool, fields)
            case .revert(let pool): change = try revert(pool: pool, fields)
            default: return .error(404, "no such path: \(path)")
            }
            if let e = host.commit(change.overrides, reason: change.reason) { return .error(e.status, e.message) }
            return AdminReply(status: 200, body: views.poolJSON(change.pool) ?? "{}\n")
        } catch {
            return .error(error.status, error.message)
        }
    }

    /// A change checked whole: the overrides it leads to, and a line for the log.
    private struct Change {
        let pool: String
        let reason: String
        let overrides: AdminOverrides
    }

    // MARK: checks

    /// A6: a request carrying Origin comes from a page in a browser on another origin (a
    /// same-origin GET carries none; the status page only reads); a Host that is not loopback
    /// on a loopback endpoint is a rebound DNS name. Both are refused before anything is read.
    private func refuseBrowser(_ request: AdminRequest) -> AdminReply? {
        if let origin = request.origin, !Self.isLoopbackOrigin(origin) || request.method != "GET" && request.method != "HEAD" {
            return .error(403, "requests from web pages (Origin: \(origin)) are refused")
        }
        if loopbackOnly, let host = request.hostField, !Self.isLoopbackHost(host) {
            return .error(403, "unexpected Host \(host); this endpoint answers to loopback addresses and localhost")
        }
        return nil
    }

    /// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
    static func isLoopbackHost(_ field: String) -> Bool {
        var name = field.trimmingCharacters(in: .whitespaces).lowercased()
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            let rest = name[name.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber)) else { return false }
            return name[name.index(after: name.startIndex)..<close] == "::1"
        }
        if let colon = name.lastIndex(of: ":") {
            guard name[name.index(after: colon)...].allSatisfy(\.isNumber) else { return false }
            name = String(name[..<colon])
        }
        if name == "localhost" { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { p in UInt8(p) != nil }
    }

    /// The status page itself, opened at http://127.0.0.1:PORT/ (a browser may send Origin on
    /// its own same-origin reads).
    static func isLoopbackOrigin(_ origin: String) -> Bool {
        guard origin.hasPrefix("http://") else { return false }
        return isLoopbackHost(String(origin.dropFirst("http://".count)))
    }

    private func authorize(_ request: AdminRequest) -> AdminReply? {
        guard let token else {
            return .error(403, "writes need admin.token_file in the config")
        }
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        let prefix = "bearer "
        guard let auth = request.authorization, auth.lowercased().hasPrefix(prefix),
              constantTimeEqual(Array(auth.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces).utf8), token) else {
            var reply = AdminReply.error(401, "writes need Authorization: Bearer <token from admin.token_file>")
            reply.headers.append(("WWW-Authenticate", "Bearer"))
            return reply
        }
        return nil
    }

    private func parseBody(_ request: AdminRequest) throws(AdminChangeError) -> [String: JSONValue] {
        if request.body.isEmpty { return [:] }
        let type = request.contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            throw AdminChangeError(status: 415, message: "send the body as Content-Type: application/json")
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(request.body)) else {
            throw AdminChangeError(status: 400, message: "the body is not valid JSON")
        }
        guard case .object(let fields) = value else { throw AdminChangeError(status: 400, message: "the body must be a JSON object") }
        return fields
    }

    private func pool(_ name: String) throws(AdminChangeError) -> PoolConfig {
        guard let pool = host.runningConfig.pools.first(where: { $0.name == name }) else {
            throw AdminChangeError(status: 404, message: "no pool named \(name)")
        }
        return pool
    }

    private static func only(_ fields: [String: JSONValue], _ allowed: Set<String>) throws(AdminChangeError) {
        let unknown = fields.keys.filter { !allowed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw AdminChangeError(
                status: 400, message: "unknown field \(unknown.joined(separator: ", ")); allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    // MARK: changes

    private func setBackend(pool name: String, address text: String, _ fields: [String: JSONValue])
        throws(AdminChangeError) -> Change
    {
        let pool = try self.pool(name)
        try Self.only(fields, ["weight", "state"])
        guard let address = parseSocketAddress(text), views.isMember(pool: name, address: address) else {
            throw AdminChangeError(status: 404, message: "pool \(name) has no backend \(text)")
        }
        var weight: Int?
        var state: AdminState?
        if let w = fields["weight"] {
            guard case .number(let d) = w, d == d.rounded(), (1...256).contains(d) else {
                throw AdminChangeError(status: 400, message: "weight must be a whole number within 1...256")
            }
            weight = Int(d)
        }
        if let s = fields["state"] {
            guard case .string(let text) = s, let parsed = AdminState(rawValue: text) else {
                throw AdminChangeError(status: 400, message: "state must be one of ready, drain, maint")
            }
            state = parsed
        }
        guard weight != nil || state != nil else {
            throw AdminChangeError(status: 400, message: "send {\"weight\": 1...256} and/or {\"state\": \"ready\" | \"drain\" | \"maint\"}")
        }
        var o = host.adminOverrides
        o.setBackend(pool: name, address: address, weight: weight, state: state)
        let what = [weight.map { "weight=\($0)" }, state.map { "state=\($0.rawValue)" }].compactMap { $0 }.joined(separator: " ")
        return Change(pool: name, reason: "backend \(address) \(what)", overrides: o)
    }

    private func setGroup(pool name: String, group: String, _ fields: [String: JSONValue])
        throws(AdminChangeError) -> Change
    {
        let pool = try self.pool(name)
        guard let current = pool.groups.first(where: { $0.name == group }) else {
            throw AdminChangeError(status: 404, message: "pool \(name) has no group \(group)")
        }
        var o = host.adminOverrides
        let kinds = ["share", "srv", "static"].filter { fields[$0] != nil }
        guard kinds.count == 1 else {
            throw AdminChangeError(
                status: 400, message: "send exactly one of {\"share\": 0...100}, {\"srv\": NAME, \"resolver\": NAME, \"slots\": N} or {\"static\": [ADDRESS, ...]}")
        }
        switch kinds[0] {
        case "share":
            try Self.only(fields, ["share"])
            guard let bp = Self.share(fields["share"]!) else {
                throw AdminChangeError(status: 400, message: "share must be a number within 0...100 with at most 2 decimals")
            }
            do throws(AdminChangeError) {
                try o.setShare(bp, group: group, in: pool)
            } catch {
                throw error
            }
            return Change(pool: name, reason: "group \(group) share=\(Share(basisPoints: bp).percentText)", overrides: o)
        case "srv":
            try Self.only(fields, ["srv", "resolver", "slots"])
            guard case .string(let srv) = fields["srv"]! else {
                throw AdminChangeError(status: 400, message: "srv must be a DNS name, e.g. _web._tcp.service.consul")
            }
            var resolver: String?
            switch fields["resolver"] {
            case nil:
                if case .srv(_, let r, _) = current.source { resolver = r }
                let all = host.runningConfig.resolvers
                if resolver == nil && all.count == 1 { resolver = all[0].name }
                guard resolver != nil else {
                    throw AdminChangeError(status: 400, message: "name the resolver: {\"resolver\": NAME}")
                }
            case .string(let r): resolver = r
            default: throw AdminChangeError(status: 400, message: "resolver must be a resolver's name")
            }
            var slots: Int?
            switch fields["slots"] {
            case nil:
                if case .srv(_, _, let s) = current.source { slots = s }
            case .number(let d) where d == d.rounded() && abs(d) < 1e9: slots = Int(d)
            default: throw AdminChangeError(status: 400, message: "slots must be a whole number within 1...4096")
            }
            return try swap(.srv(name: srv, resolver: resolver, slots: slots), group: group, pool: pool, overrides: o)
        default:
            try Self.only(fields, ["static"])
            guard case .array(let items) = fields["static"]! else {
                throw AdminChangeError(status: 400, message: "static must be a list of addresses")
            }
            var list: [RawBackend] = []
            for item in items {
                switch item {
                case .string(let a): list.append(RawBackend(address: a, weight: nil, isBareAddress: true))
                case .object(let f):
                    guard (try? Self.only(f, ["address", "weight"])) != nil, case .string(let a)? = f["address"] else {
                        throw AdminChangeError(status: 400, message: "a static entry is \"host:port\" or {\"address\": \"host:port\", \"weight\": N}")
                    }
                    var weight: Int?
                    if let w = f["weight"] {
                        guard case .number(let d) = w, d == d.rounded(), abs(d) < 1e9 else {
                            throw AdminChangeError(status: 400, message: "weight must be a whole number within 1...256")
                        }
                        weight = Int(d)
                    }
                    list.append(RawBackend(address: a, weight: weight, isBareAddress: false))
                default:
                    throw AdminChangeError(status: 400, message: "a static entry is \"host:port\" or {\"address\": \"host:port\", \"weight\": N}")
                }
            }
            return try swap(.staticBackends(list), group: group, pool: pool, overrides: o)
        }
    }

    private func swap(_ raw: RawGroupSource, group: String, pool: PoolConfig, overrides: AdminOverrides)
        throws(AdminChangeError) -> Change
    {
        let (source, problems) = ConfigValidator.validateSource(
            raw, group: group, in: pool, resolverNames: host.runningConfig.resolvers.map(\.name), at: .root)
        guard let source else {
            throw AdminChangeError(status: 400, message: problems.map(\.description).joined(separator: "; "))
        }
        var o = overrides
        o.setSource(source, group: group, in: pool)
        let what: String
        switch source {
        case .srv(let name, _, _): what = "srv \(name)"
        case .staticBackends(let list): what = "static \(list.map(\.address.description).joined(separator: ","))"
        }
        return Change(pool: pool.name, reason: "group \(group) source=\(what)", overrides: o)
    }

    private func promote(pool name: String, _ fields: [String: JSONValue])
        throws(AdminChangeError) -> Change
    {
        let pool = try self.pool(name)
        try Self.only(fields, ["group"])
        guard case .string(let group)? = fields["group"] else {
            throw AdminChangeError(status: 400, message: "name the group to promote: {\"group\": \"canary\"}")
        }
        var o = host.adminOverrides
        do throws(AdminChangeError) {
            try o.promote(group: group, in: pool)
        } catch {
            throw error
        }
        return Change(pool: name, reason: "promote \(group)", overrides: o)
    }

    private func revert(pool name: String, _ fields: [String: JSONValue])
        throws(AdminChangeError) -> Change
    {
        let pool = try self.pool(name)
        try Self.only(fields, ["group"])
        var group: String?
        switch fields["group"] {
        case nil: break
        case .string(let g): group = g
        default: throw AdminChangeError(status: 400, message: "group must be a group's name")
        }
        guard let file = host.fileConfig.pools.first(where: { $0.name == name }) else {
            throw AdminChangeError(status: 404, message: "no pool named \(name)")
        }
        var o = host.adminOverrides
        do throws(AdminChangeError) {
            try o.revert(group: group, in: pool, file: file)
        } catch {
            throw error
        }
        return Change(pool: name, reason: "revert \(group ?? "last promoted")", overrides: o)
    }

    /// A share as a JSON number (or a string like "5%"): basis points, or nil.
    private static func share(_ value: JSONValue) -> Int? {
        switch value {
        case .number(let d):
            guard d.isFinite, d >= 0, d <= 100 else { return nil }
            let bp = (d * 100).rounded()
            guard abs(d * 100 - bp) < 1e-6 else { return nil }
            return Int(bp)
        case .string(let s): return parseShare(s)?.basisPoints
        default: return nil
        }
    }
}

/// Compares without an early exit, so the time taken says nothing about where a guess differs.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
    for i in 0..<max(a.count, b.count) {
        let x = i < a.count ? a[i] : 0
        let y = i < b.count ? b[i] : 0
        diff |= x ^ y
    }
    return diff == 0
}

/// Any JSON value, so request bodies can be checked field by field (unknown fields refused, a
/// boolean never read as a number).
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }
}

/// A JSON string literal for `s`.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where u.value < 0x20:
            let hex = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

// The memory behind a parsed head. While scanning, field offsets go to stack space
// (`HTTPFieldCollector`); a complete head then gets exactly one heap allocation holding its field
// table and a copy of its bytes (`HTTPHeadStorage`). Measured: two arrays per head cost more than the
// whole scan of a small request, `[UInt8]` allocation alone ~360 instructions on Linux (a prespecialized
// metadata lookup on every allocation).

/// What lbd needs to know about a field name; decided once, while scanning.
enum HTTPFieldKind: UInt8, Sendable {
    case other
    case contentLength, transferEncoding, host, connection, expect
    case keepAlive, proxyConnection, te, trailer, upgrade, proxyAuthenticate, proxyAuthorization
    case xForwardedFor, xForwardedProto
    /// `X_Forwarded_For`, `x-forwarded_proto`…: collides with a field lbd sets once `_` reads as `-`
    /// (bad-inputs H25), so requests drop it.
    case forwardedUnderscored
}

/// One field line: offsets into the head's bytes; the value is trimmed of OWS.
struct HTTPField: Sendable {
    var nameStart: Int32
    var nameEnd: Int32
    var valueStart: Int32
    var valueEnd: Int32
    var kind: HTTPFieldKind
}

/// Collects field lines during a scan: in caller-provided (stack) space, moving to the heap only
/// past its capacity. The owner calls `deallocate()` when done.
struct HTTPFieldCollector {
    /// Fields kept on the stack: 48 × 20 bytes stays under the 1 KiB that
    /// `withUnsafeTemporaryAllocation` always places on the stack.
    static let inlineCapacity = 48

    private let inline: UnsafeMutableBufferPointer<HTTPField>
    private var heap: UnsafeMutableBufferPointer<HTTPField>?
    private(set) var count = 0

    init(_ inline: UnsafeMutableBufferPointer<HTTPField>) { self.inline = inline }

    /// The fields so far; valid until the next `append` or `deallocate`.
    var fields: UnsafeBufferPointer<HTTPField> {
        UnsafeBufferPointer(rebasing: (heap ?? inline)[0..<count])
    }

    @inline(__always)
    mutating func append(_ field: HTTPField) {
        if heap == nil && count < inline.count {
            inline.initializeElement(at: count, to: field)
            count += 1
        } else {
            appendSlowly(field)
        }
    }

    private mutating func appendSlowly(_ field: HTTPField) {
        let storage = heap ?? inline
        if count < storage.count {
            storage.initializeElement(at: count, to: field)
        } else {
            let grown = UnsafeMutableBufferPointer<HTTPField>.allocate(capacity: Swift.max(storage.count * 2, 16))
            _ = grown.initialize(fromContentsOf: storage[0..<count])
            heap?.deallocate()
            heap = grown
            grown.initializeElement(at: count, to: field)
        }
        count += 1
    }

    func deallocate() { heap?.deallocate() }
}

/// Immutable once `HTTPHeadStorage.init` returns: the field table, then the head bytes.
final class HTTPHeadBuffer: ManagedBuffer<HTTPHeadBuffer.Counts, HTTPField> {
    struct Counts {
        var fieldCount: Int
        var byteCount: Int
    }
}

/// A head's bytes (request or status line, field lines, final CRLF) and its field offsets, in one
/// shared allocation. Sendable because nothing writes the buffer after `init` (ManagedBuffer itself
/// opts out of Sendable): copies of a head are cheap and safe to hand to another thread.
struct HTTPHeadStorage: @unchecked Sendable {
    private let buffer: HTTPHeadBuffer

    /// Copies `count` bytes from `p` and the `fields` that point into them.
    init(copying p: UnsafePointer<UInt8>, count: Int, fields: UnsafeBufferPointer<HTTPField>) {
        let stride = MemoryLayout<HTTPField>.stride
        let capacity = fields.count + (count + stride - 1) / stride
        let made = HTTPHeadBuffer.create(minimumCapacity: capacity) { _ in
            HTTPHeadBuffer.Counts(fieldCount: fields.count, byteCount: count)
        }
        buffer = unsafeDowncast(made, to: HTTPHeadBuffer.self)
        buffer.withUnsafeMutablePointerToElements { elements in
            if let source = fields.baseAddress { elements.initialize(from: source, count: fields.count) }
            let bytes = UnsafeMutableRawPointer(elements + fields.count).bindMemory(to: UInt8.self, capacity: count)
            bytes.initialize(from: p, count: count)
        }
    }

    /// Calls `body` with the head bytes and the field table.
    func withBytesAndFields<R>(
        _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<HTTPField>) -> R
    ) -> R {
        buffer.withUnsafeMutablePointers { counts, elements in
            let fieldCount = counts.pointee.fieldCount
            let bytes = UnsafeRawPointer(elements + fieldCount).assumingMemoryBound(to: UInt8.self)
            return body(
                UnsafeBufferPointer(start: bytes, count: counts.pointee.byteCount),
                UnsafeBufferPointer(start: elements, count: fieldCount))
        }
    }

    func string(_ start: Int32, _ end: Int32) -> String {
        withBytesAndFields { bytes, _ in
            guard let base = bytes.baseAddress else { return "" }
            return HTTPHeadScanner.string(base, Int(start), Int(end))
        }
    }

    /// Field names and values as written, in order; for logs, tests and routing rules.
    var namesAndValues: [(name: String, value: String)] {
        withBytesAndFields { bytes, fields in
            guard let base = bytes.baseAddress else { return [] }
            return fields.map { f in
                (
                    HTTPHeadScanner.string(base, Int(f.nameStart), Int(f.nameEnd)),
                    HTTPHeadScanner.string(base, Int(f.valueStart), Int(f.valueEnd))
                )
            }
        }
    }

    /// The value of the first field named `name` (compared case-insensitively), or nil.
    func firstValue(forName name: String) -> String? {
        let wanted = Array(name.utf8)
        let found: HTTPField? = withBytesAndFields { bytes, fields in
            fields.first { f in
                Int(f.nameEnd - f.nameStart) == wanted.count
                    && wanted.indices.allSatisfy {
                        bytes[Int(f.nameStart) + $0].asciiLowercased == wanted[$0].asciiLowercased
                    }
            }
        }
        return found.map { string($0.valueStart, $0.valueEnd) }
    }
}

// libFuzzer targets for lbd's own parsers, one executable: LBD_FUZZ_TARGET chooses which one runs.
//   request   HTTP/1.1 request heads, pipelined (up to 8 per input), and the head lbd forwards
//   response  HTTP/1.1 response heads (for GET and HEAD) and the head lbd sends to the client
//   chunked   the streaming chunked decoder, fed in pieces whose sizes come from the input
//   config    the YAML config loader and validator
// Built for fuzzing by scripts/fuzz (with -DFUZZING); a plain build is a replay tool:
//   LBD_FUZZ_TARGET=request .build/debug/FuzzLBCore FILE...   exit 0 unless an input traps.
// and, with LBD_FUZZ_TARGET=frames, prints where lbd's parsers end each pipelined request of
// each file (the differential test against llhttp reads this): per file a line `file PATH`, then
// `message END` per request (END: the offset just past its body), and last `reject STATUS` or
// `incomplete` (the rest did not make a request).

#if canImport(Glibc)
import Glibc
#endif
import LBCore

enum Target: String {
    case request, response, chunked, config, frames
}

let target: Target = {
    guard let name = getenv("LBD_FUZZ_TARGET").map({ String(cString: $0) }), let t = Target(rawValue: name) else {
        let message = Array("set LBD_FUZZ_TARGET to request, response, chunked or config\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLBCore(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch target {
    case .request: fuzzRequest(bytes)
    case .response: fuzzResponse(bytes)
    case .chunked: fuzzChunked(bytes)
    case .config: fuzzConfig(bytes)
    case .frames: for line in frames(bytes) { print(line) }
    }
    return 0
}

func fuzzRequest(_ bytes: UnsafeRawBufferPointer) {
    var offset = 0
    for _ in 0..<8 where offset < bytes.count {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        guard case .complete(let head) = HTTPRequestParser.parse(rest, limits: HTTPLimits()) else { return }
        precondition(head.headLength > 0 && head.headLength <= rest.count, "head length \(head.headLength) of \(rest.count)")
        var sink = ArrayHeadSink()
        head.writeUpstreamHead(clientAddress: "192.0.2.1", forwardedProto: "http", to: &sink)
        // What lbd forwards must parse again, to the same request (with room for the fields lbd
        // adds: X-Forwarded-For, X-Forwarded-Proto, Host for an HTTP/1.0 request without one, and
        // a longer XFF).
        var roomier = HTTPLimits()
        roomier.maxHeaderCount += 3
        roomier.maxHeaderBytes += 1024
        let again = sink.bytes.withUnsafeBytes { HTTPRequestParser.parse($0, limits: roomier) }
        guard case .complete(let forwarded) = again else { preconditionFailure("forwarded head does not parse: \(again)") }
        precondition(forwarded.method == head.method && forwarded.target == head.target && forwarded.framing == head.framing,
                     "forwarded head differs")
        offset += head.headLength
        if case .contentLength(let n) = head.framing { offset += Int(min(n, UInt64(bytes.count))) }
    }
}

func fuzzResponse(_ bytes: UnsafeRawBufferPointer) {
    for head in [false, true] {
        guard case .complete(let response) = HTTPResponseParser.parse(bytes, requestWasHEAD: head, maxHeaderBytes: 65_536)
        else { continue }
        precondition(response.headLength > 0 && response.headLength <= bytes.count, "head length")
        var sink = ArrayHeadSink()
        response.writeClientHead(clientVersionMinor: 1, closeAfter: false, to: &sink)
        var sink0 = ArrayHeadSink()
        response.writeClientHead(clientVersionMinor: 0, closeAfter: true, to: &sink0)
    }
}

func fuzzChunked(_ bytes: UnsafeRawBufferPointer) {
    guard let first = bytes.first else { return }
    // The first byte sets the piece size, so chunk lines split across reads are covered.
    let piece = Int(first % 16) + 1
    var decoder = ChunkedDecoder(maxExtensionBytes: 64, maxTrailerBytes: 256)
    var i = 1
    while i < bytes.count {
        let end = min(bytes.count, i + piece)
        var window = UnsafeRawBufferPointer(rebasing: bytes[i..<end])
        while !window.isEmpty {
            if decoder.dataRemaining > 0 {
                let n = Int(min(decoder.dataRemaining, UInt64(window.count)))
                decoder.consumedData(n)
                window = UnsafeRawBufferPointer(rebasing: window[n...])
                continue
            }
            let result: (consumed: Int, event: ChunkedDecoder.Event)
            do throws(HTTPError) {
                result = try decoder.decode(window)
            } catch {
                return
            }
            precondition(result.consumed <= window.count, "consumed more than given")
            if result.event == .messageEnd { return }
            if result.consumed == 0 && result.event == .needMore { break }
            window = UnsafeRawBufferPointer(rebasing: window[result.consumed...])
        }
        i = end
    }
}

func fuzzConfig(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    do {
        let config = try ConfigLoader.load(yaml: text, defaultWorkers: 2)
        precondition(!config.pools.isEmpty, "a valid config has a pool")
    } catch {
        precondition(!error.problems.isEmpty, "a refusal names a problem")
    }
}

/// Where each pipelined request in `bytes` ends, by lbd's request parser and chunked decoder.
func frames(_ bytes: UnsafeRawBufferPointer) -> [String] {
    var out: [String] = []
    var offset = 0
    while offset < bytes.count && out.count < 32 {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        switch HTTPRequestParser.parse(rest, limits: HTTPLimits()) {
        case .incomplete:
            return out + ["incomplete"]
        case .failed(let error):
            return out + ["reject \(error.status)"]
        case .complete(let head):
            var end = offset + head.headLength
            switch head.framing {
            case .none, .untilClose:
                break
            case .contentLength(let n):
                guard n <= UInt64(bytes.count - end) else { return out + ["incomplete"] }
                end += Int(n)
            case .chunked:
                var decoder = ChunkedDecoder(maxExtensionBytes: HTTPLimits().maxChunkExtension)
                var finished = false
                while end < bytes.count && !finished {
                    if decoder.dataRemaining > 0 {
                        let n = Int(min(decoder.dataRemaining, UInt64(bytes.count - end)))
                        decoder.consumedData(n)
                        end += n
                        continue
                    }
                    do throws(HTTPError) {
                        let (consumed, event) = try decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[end...]))
                        end += consumed
                        finished = event == .messageEnd
                    } catch {
                        return out + ["reject \(error.status)"]
                    }
                }
                guard finished else { return out + ["incomplete"] }
            }
            out.append("message \(end)")
            // lbd reads nothing more after a request that ends the connection.
            if !head.keepAlive { return out }
            offset = end
        }
    }
    return out
}

#if !FUZZING
import Foundation

@main enum Replay {
    static func main() {
        _ = target
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("cannot read \(path)")
                continue
            }
            let bytes = [UInt8](data)
            if target == .frames { print("file \(path)") }
            _ = bytes.withUnsafeBufferPointer { fuzzLBCore($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
            if target != .frames { print("ok \(path)") }
        }
    }
}
#endif

// libFuzzer target for the DNS codec: decode, then everything discovery derives from a reply.
// Built for fuzzing by scripts/fuzz-dns (with -DFUZZING); a plain build is a replay tool:
//   .build/debug/FuzzDNS FILE...   decodes each file, exit 0 unless it traps.

import DNSResolver

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNS(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? DNSMessage.decode(bytes) else { return 0 }
    for question in message.questions {
        let srv = SRVAnswer.extract(from: message, question: question)
        for t in srv.targets { for a in t.addresses { _ = a.description } }
        _ = AddressAnswer.extract(from: message, question: question)
    }
    // The query machine must take any reply without trapping, over UDP and TCP.
    if let name = DNSName("_web._tcp.service.consul") {
        var rng = SystemRandomNumberGenerator()
        var q = DNSQuery(question: DNSQuestion(name: name, type: 33), settings: .init(nameservers: 1, timeout: .seconds(1)))
        _ = q.start(now: 1, random: &rng)
        _ = q.udpReceived(bytes, now: 2, random: &rng)
        _ = q.tcpReceived([UInt8(size >> 8 & 0xFF), UInt8(size & 0xFF)] + bytes, now: 3, random: &rng)
    }
    return 0
}

#if !FUZZING
import Foundation

@main enum Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("cannot read \(path)")
                continue
            }
            let bytes = [UInt8](data)
            _ = bytes.withUnsafeBufferPointer { fuzzDNS($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
            print("ok \(path)")
        }
    }
}
#endif

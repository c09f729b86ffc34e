// libFuzzer target for the VRRP codec and state machine: decode any packet (with and without the
// TTL check), re-encode what decodes, and feed decoded adverts to an instance whose clock the
// input also drives; the machine's invariants must hold after every step.
// Built for fuzzing by scripts/fuzz vrrp (with -DFUZZING); a plain build is a replay tool:
//   .build/debug/FuzzVRRP FILE...   runs each file, exit 0 unless it traps.

import VRRP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVRRP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for ttl in [true, false] {
        guard case .success(let a) = VRRPCodec.decode(bytes, requireTTL255: ttl) else { continue }
        precondition(!a.addresses.isEmpty && a.intervalCentiseconds > 0 && (a.version == 2 || a.version == 3), "decoded an invalid advert")
        if a.version == 3 {
            // What decodes re-encodes to something that decodes to the same advert.
            let again = VRRPCodec.encodeIPv4(
                vrid: a.vrid, priority: a.priority, intervalCentiseconds: a.intervalCentiseconds, addresses: a.addresses,
                source: a.source, destination: a.destination, ipID: 7, checksumForm: a.checksumForm)
            guard case .success(let b) = VRRPCodec.decode(again) else { preconditionFailure("re-encoded advert does not decode") }
            precondition(b.addresses == a.addresses && b.priority == a.priority && b.vrid == a.vrid, "round trip changed the advert")
        }
    }
    // The state machine, driven by the input: each 4-byte step is (op, priority, delay ms, arg).
    var m = VRRPMachine(
        priority: size > 0 ? max(1, bytes[0]) : 100, intervalCentiseconds: 10, preempt: size > 1 && bytes[1] & 1 == 0,
        preemptDelayNanos: size > 1 && bytes[1] & 2 != 0 ? 500_000_000 : 0, ownAddress: 0x0A63_000B)
    var now: UInt64 = 0
    _ = m.handle(.start, now: now)
    var i = 2
    while i + 4 <= size {
        let (op, p, delay, arg) = (bytes[i], bytes[i + 1], UInt64(bytes[i + 2]), bytes[i + 3])
        now += delay * 1_000_000
        let input: VRRPMachine.Input
        switch op % 8 {
        case 0, 1, 2: input = .advert(source: 0x0A63_0000 | UInt32(arg), priority: p, intervalCentiseconds: UInt16(max(1, arg)))
        case 3: input = .timer
        case 4: input = .setAdjustment(Int(Int8(bitPattern: p)) * 2)
        case 5: input = .setFault(arg & 1 == 1)
        case 6: input = arg < 16 ? .resign : .timer
        default: input = arg < 8 ? .shutdown : .timer
        }
        let actions = m.handle(input, now: now)
        if m.faulted && m.role != .stopped && m.role != .resigning { precondition(m.role == .fault || m.role == .initialize, "faulted but \(m.role)") }
        if actions.contains(.addVIPs) { precondition(m.role == .master, "VIPs added outside master") }
        switch m.role {
        case .master, .backup, .resigning: precondition(m.nextDeadline != nil, "\(m.role) without a timer")
        case .fault, .stopped: precondition(m.nextDeadline == nil, "\(m.role) with a timer")
        case .initialize: break
        }
        precondition(m.effectivePriority >= 1, "priority 0 advertised as own")
        i += 4
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
            _ = bytes.withUnsafeBufferPointer { fuzzVRRP($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
            print("ok \(path)")
        }
    }
}
#endif

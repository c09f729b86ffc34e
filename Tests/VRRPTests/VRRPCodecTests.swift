// The codec against keepalived 2.2.7's own packets (shared/notes/vrrp-golden-packets.md).

import Testing

@testable import VRRP

func bytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = hex.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

let lb1: UInt32 = 0x0A63_000B  // 10.99.0.11
let lb2: UInt32 = 0x0A63_000C
let vip1: UInt32 = 0x0A63_000A
let vip2: UInt32 = 0x0A63_0014

/// (name, hex, vips, priority, interval cs, destination, ip id)
let v3Golden: [(String, String, [UInt32], UInt8, UInt16, UInt32, UInt16)] = [
    ("v3-1vip 150", "45c0002000010000ff70d02c0a63000be000001231339601006442fd0a63000a", [vip1], 150, 100, VRRPCodec.multicastGroup, 1),
    ("v3-1vip 0", "45c0002000050000ff70d0280a63000be0000012313300010064d8fd0a63000a", [vip1], 0, 100, VRRPCodec.multicastGroup, 5),
    ("v3-2vip 150", "45c0002400010000ff70d0280a63000be000001231339602006438810a63000a0a630014", [vip1, vip2], 150, 100, VRRPCodec.multicastGroup, 1),
    ("v3-2vip 0", "45c0002400050000ff70d0240a63000be0000012313300020064ce810a63000a0a630014", [vip1, vip2], 0, 100, VRRPCodec.multicastGroup, 5),
    ("v3-adv0.1 150", "45c0002000010000ff70d02c0a63000be000001231339601000a43570a63000a", [vip1], 150, 10, VRRPCodec.multicastGroup, 1),
    ("v3-adv0.1 0", "45c00020000d0000ff70d0200a63000be000001231330001000ad9570a63000a", [vip1], 0, 10, VRRPCodec.multicastGroup, 13),
    ("v3-unicast 150", "45c0002000010000ff70a5d00a63000b0a63000c31339601006418a10a63000a", [vip1], 150, 100, lb2, 1),
    ("v3-unicast 0", "45c0002000050000ff70a5cc0a63000b0a63000c313300010064aea10a63000a", [vip1], 0, 100, lb2, 5),
]

@Suite("VRRP codec") struct VRRPCodecTests {
    @Test(arguments: v3Golden.indices) func keepalivedV3ByteForByte(_ i: Int) throws {
        let (name, hex, vips, priority, interval, destination, id) = v3Golden[i]
        let packet = bytes(hex)
        let advert = try VRRPCodec.decode(packet).get()
        #expect(advert.version == 3 && advert.vrid == 51, "\(name)")
        #expect(advert.priority == priority && advert.intervalCentiseconds == interval)
        #expect(advert.addresses == vips && advert.source == lb1 && advert.destination == destination)
        #expect(advert.checksumForm == .withPseudoHeader)
        let encoded = VRRPCodec.encodeIPv4(
            vrid: 51, priority: priority, intervalCentiseconds: interval, addresses: vips, source: lb1,
            destination: destination, ipID: id)
        #expect(encoded == packet, "\(name)")
    }

    /// RFC 9568's form, computed in the notes from the captured packets.
    @Test func rfc9568ChecksumForm() throws {
        let cases: [([UInt32], UInt8, UInt16, UInt16)] = [
            ([vip1], 150, 100, 0x2dfa), ([vip1], 0, 100, 0xc3fa), ([vip1, vip2], 150, 100, 0x2382),
            ([vip1, vip2], 0, 100, 0xb982), ([vip1], 150, 10, 0x2e54), ([vip1], 0, 10, 0xc454),
        ]
        for (vips, priority, interval, sum) in cases {
            let p = VRRPCodec.encodeIPv4(
                vrid: 51, priority: priority, intervalCentiseconds: interval, addresses: vips, source: lb1,
                destination: VRRPCodec.multicastGroup, ipID: 1, checksumForm: .vrrpOnly)
            #expect(UInt16(p[26]) << 8 | UInt16(p[27]) == sum)
            #expect(try VRRPCodec.decode(p).get().checksumForm == .vrrpOnly)
        }
        // A unicast advert from keepalived older than 1.3.6: pseudo-header with 224.0.0.18.
        let old = VRRPCodec.encodeIPv4(
            vrid: 51, priority: 150, intervalCentiseconds: 100, addresses: [vip1], source: lb1, destination: lb2, ipID: 1,
            checksumForm: .multicastPseudoHeader)
        #expect(UInt16(old[26]) << 8 | UInt16(old[27]) == 0x42fd)
        #expect(try VRRPCodec.decode(old).get().checksumForm == .multicastPseudoHeader)
    }

    @Test func v2AdvertsDecode() throws {
        let plain = try VRRPCodec.decode(bytes("45c0002800010000ff70d0240a63000be00000122133960100013e5d0a63000a0000000000000000")).get()
        #expect(plain.version == 2 && plain.priority == 150 && plain.intervalCentiseconds == 100 && plain.addresses == [vip1])
        let pass = try VRRPCodec.decode(bytes("45c0002800010000ff70d0240a63000be000001221339601010192e10a63000a6c62647465737431")).get()
        #expect(pass.version == 2 && pass.authType == 1)
        let two = try VRRPCodec.decode(bytes("45c0002c00010000ff70d0200a63000be000001221339602000133e50a63000a0a6300140000000000000000")).get()
        #expect(two.addresses == [vip1, vip2])
    }

    @Test func gratuitousARPByteForByte() {
        let mac: [UInt8] = [0x02, 0x99, 0, 0, 0, 0x11]
        #expect(VRRPCodec.gratuitousARP(mac: mac, address: vip1)
            == bytes("ffffffffffff029900000011080600010800060400010299000000110a63000affffffffffff0a63000a"))
        #expect(VRRPCodec.gratuitousARP(mac: mac, address: vip2)
            == bytes("ffffffffffff029900000011080600010800060400010299000000110a630014ffffffffffff0a630014"))
    }

    /// bad-inputs.md V1, V5, V6: every malformed advert is dropped with its reason.
    @Test func dropReasons() {
        let good = bytes(v3Golden[0].1)
        func reason(_ p: [UInt8], ttl255: Bool = true) -> VRRPDropReason? {
            if case .failure(let r) = VRRPCodec.decode(p, requireTTL255: ttl255) { return r }
            return nil
        }
        func edit(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
            var p = good
            body(&p)
            return p
        }
        /// Re-signs the VRRP part after an edit, so only the edited field is wrong.
        func resigned(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
            var p = edit(body)
            p[26] = 0
            p[27] = 0
            let sum = p.withUnsafeBytes { VRRPCodec.checksum(UnsafeRawBufferPointer(rebasing: $0[20...]), pseudo: (lb1, VRRPCodec.multicastGroup)) }
            p[26] = UInt8(sum >> 8)
            p[27] = UInt8(sum & 0xFF)
            return p
        }
        #expect(reason(good) == nil)
        #expect(reason(Array(good.prefix(19))) == .truncated)
        #expect(reason(Array(good.prefix(27))) == .badIPHeader)  // total length beyond the data
        #expect(reason(edit { $0[8] = 64 }) == .badTTL)
        #expect(reason(edit { $0[8] = 64 }, ttl255: false) == nil)
        #expect(reason(edit { $0[9] = 6 }) == .notVRRP)
        #expect(reason(edit { $0[0] = 0x65 }) == .badIPHeader)
        #expect(reason(resigned { $0[20] = 0x41 }) == .badVersion)
        #expect(reason(resigned { $0[20] = 0x32 }) == .badType)
        #expect(reason(resigned { $0[23] = 2 }) == .badLength)
        #expect(reason(resigned { $0[24] = 0; $0[25] = 0 }) == .zeroInterval)
        #expect(reason(edit { $0[22] = 151 }) == .badChecksum)
        #expect(reason(resigned { $0[22] = 151 }) == nil)
        // Count 0 with an empty list: the length matches, but v3 needs an address.
        let empty = resigned { $0[23] = 0; $0[2] = 0; $0[3] = 28 }
        #expect(reason(Array(empty.prefix(28))) == .noAddresses)
        #expect(VRRPCodec.decode([]).failureReason == .truncated)
    }
}

extension Result where Failure == VRRPDropReason {
    var failureReason: VRRPDropReason? { if case .failure(let r) = self { r } else { nil } }
}

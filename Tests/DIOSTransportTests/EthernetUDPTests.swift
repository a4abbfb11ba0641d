import DIOSTransport
import DIOSWire
import Foundation
import Testing

/// The framing a DPDK transport writes and checks, without DPDK: every packet a
/// device could hand over is classified without trapping, and only well-formed
/// UDP datagrams to our MAC, IP and port come through.
@Suite struct EthernetUDPTests {
    static let ourMAC = EthernetAddress(value: 0x0200_0000_0001)
    static let theirMAC = EthernetAddress(value: 0x0200_0000_0002)
    static let us = PeerAddress(ipv4: 0x0A00_0001, port: 9000)
    static let them = PeerAddress(ipv4: 0x0A00_0002, port: 4242)

    /// A datagram from `them` to `us` carrying `payload`, as `send` builds it.
    static func packet(_ payload: [UInt8], to destination: PeerAddress = us, mac: EthernetAddress = ourMAC) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: EthernetUDP.headerSize + payload.count)
        bytes.withUnsafeMutableBytes { raw in
            EthernetUDP.writeHeaders(
                to: raw.baseAddress!, sourceMAC: theirMAC, destinationMAC: mac, source: them,
                destination: destination, payloadLength: payload.count, identification: 7)
        }
        bytes.replaceSubrange(EthernetUDP.headerSize..., with: payload)
        return bytes
    }

    static func classify(_ bytes: [UInt8]) -> EthernetUDP.Verdict {
        bytes.withUnsafeBytes { EthernetUDP.classify($0, mac: ourMAC, local: us) }
    }

    /// Recomputes the IPv4 header checksum after a test changed the header.
    static func fixChecksum(_ bytes: inout [UInt8]) {
        let ihl = Int(bytes[14] & 0x0F) * 4
        bytes[24] = 0
        bytes[25] = 0
        let sum = bytes.withUnsafeBytes { EthernetUDP.checksum(UnsafeRawBufferPointer(rebasing: $0[14..<(14 + ihl)])) }
        bytes[24] = UInt8(sum >> 8)
        bytes[25] = UInt8(sum & 0xFF)
    }

    @Test func headersRoundTripWithAValidChecksum() {
        let payload = (0..<100).map { UInt8($0) }
        let bytes = Self.packet(payload)
        // Ethernet: destination, source, IPv4.
        #expect(Array(bytes[0..<6]) == Self.ourMAC.bytes)
        #expect(Array(bytes[6..<12]) == Self.theirMAC.bytes)
        #expect(bytes[12] == 0x08 && bytes[13] == 0x00)
        // IPv4: version/IHL, total length, DF, TTL, UDP, addresses; checksum verifies to 0.
        #expect(bytes[14] == 0x45)
        #expect(Int(bytes[16]) << 8 | Int(bytes[17]) == 20 + 8 + 100)
        #expect(bytes[20] == 0x40 && bytes[21] == 0)
        #expect(bytes[22] == 64 && bytes[23] == 17)
        #expect(Array(bytes[26..<30]) == [10, 0, 0, 2])
        #expect(Array(bytes[30..<34]) == [10, 0, 0, 1])
        #expect(bytes.withUnsafeBytes { EthernetUDP.checksum(UnsafeRawBufferPointer(rebasing: $0[14..<34])) } == 0)
        // UDP: ports, length, no checksum.
        #expect(Int(bytes[34]) << 8 | Int(bytes[35]) == 4242)
        #expect(Int(bytes[36]) << 8 | Int(bytes[37]) == 9000)
        #expect(Int(bytes[38]) << 8 | Int(bytes[39]) == 108)
        #expect(bytes[40] == 0 && bytes[41] == 0)

        guard case .frame(let range, let source) = Self.classify(bytes) else {
            Issue.record("a well-formed datagram was not accepted")
            return
        }
        #expect(Array(bytes[range]) == payload)
        #expect(source == Self.them)
    }

    @Test func emptyAndLargestFramesPass() {
        for size in [0, 1, EthernetUDP.maxPayload] {
            let payload = [UInt8](repeating: 0xAB, count: size)
            guard case .frame(let range, _) = Self.classify(Self.packet(payload)) else {
                Issue.record("size \(size) not accepted")
                continue
            }
            #expect(range.count == size)
        }
    }

    /// A short frame arrives padded to Ethernet's 60-byte minimum: the IP length rules.
    @Test func ethernetPaddingIsIgnored() {
        let bytes = Self.packet([1, 2, 3]) + [UInt8](repeating: 0, count: 15)
        guard case .frame(let range, _) = Self.classify(bytes) else {
            Issue.record("padded frame not accepted")
            return
        }
        #expect(Array(bytes[range]) == [1, 2, 3])
    }

    @Test func everyTruncationIsDroppedAsMalformed() {
        let bytes = Self.packet((0..<40).map { UInt8($0) })
        for length in 0..<bytes.count {
            #expect(Self.classify(Array(bytes[0..<length])) == .drop(.malformed), "length \(length)")
        }
    }

    @Test func packetsNotForUsAreDroppedWithTheirReason() {
        let good = Self.packet([9, 9, 9, 9])

        #expect(Self.classify(Self.packet([1], to: PeerAddress(ipv4: 0x0A00_0003, port: 9000))) == .drop(.notForUs))
        #expect(Self.classify(Self.packet([1], to: PeerAddress(ipv4: Self.us.ipv4, port: 9001))) == .drop(.wrongPort))
        #expect(Self.classify(Self.packet([1], mac: Self.theirMAC)) == .drop(.notForUs))
        #expect(Self.classify(Self.packet([1], mac: .broadcast)) == .drop(.notForUs))

        var ipv6 = good
        ipv6[12] = 0x86
        ipv6[13] = 0xDD
        #expect(Self.classify(ipv6) == .drop(.notIPv4))

        var vlan = good
        vlan[12] = 0x81
        vlan[13] = 0x00
        #expect(Self.classify(vlan) == .drop(.notIPv4))

        var tcp = good
        tcp[23] = 6
        Self.fixChecksum(&tcp)
        #expect(Self.classify(tcp) == .drop(.notUDP))

        var corrupted = good
        corrupted[22] = 63  // TTL changed, checksum not
        #expect(Self.classify(corrupted) == .drop(.badChecksum))

        var moreFragments = good
        moreFragments[20] = 0x20
        Self.fixChecksum(&moreFragments)
        #expect(Self.classify(moreFragments) == .drop(.fragment))

        var laterFragment = good
        laterFragment[20] = 0x00
        laterFragment[21] = 0x10
        Self.fixChecksum(&laterFragment)
        #expect(Self.classify(laterFragment) == .drop(.fragment))

        var version6 = good
        version6[14] = 0x65
        Self.fixChecksum(&version6)
        #expect(Self.classify(version6) == .drop(.malformed))

        var shortHeader = good
        shortHeader[14] = 0x44
        #expect(Self.classify(shortHeader) == .drop(.malformed))

        var longIPLength = good
        longIPLength[17] &+= 1
        Self.fixChecksum(&longIPLength)
        #expect(Self.classify(longIPLength) == .drop(.malformed))

        var longUDPLength = good
        longUDPLength[39] &+= 1
        #expect(Self.classify(longUDPLength) == .drop(.malformed))

        var shortUDPLength = good
        shortUDPLength[38] = 0
        shortUDPLength[39] = 7
        #expect(Self.classify(shortUDPLength) == .drop(.malformed))
    }

    /// A header with 4 bytes of IP options: the UDP header and payload move back.
    @Test func ipOptionsAreSkipped() {
        var bytes = Self.packet([5, 6, 7])
        bytes.insert(contentsOf: [1, 1, 1, 0], at: 34)  // NOP NOP NOP EOL
        bytes[14] = 0x46
        let total = 24 + 8 + 3
        bytes[16] = UInt8(total >> 8)
        bytes[17] = UInt8(total & 0xFF)
        Self.fixChecksum(&bytes)
        guard case .frame(let range, let source) = Self.classify(bytes) else {
            Issue.record("options not handled")
            return
        }
        #expect(Array(bytes[range]) == [5, 6, 7])
        #expect(source == Self.them)
    }

    /// Random bytes and randomly corrupted datagrams never trap, and an accepted
    /// payload always lies inside the packet.
    @Test func randomAndMutatedPacketsNeverTrap() {
        var rng = SplitMix(seed: 0xD105)
        let template = Self.packet((0..<64).map { UInt8($0) })
        var accepted = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(rng.next() % 128)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                bytes = template
                for _ in 0..<(1 + rng.next() % 3) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 4 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
            }
            if case .frame(let range, _) = Self.classify(bytes) {
                accepted += 1
                #expect(range.lowerBound >= EthernetUDP.headerSize && range.upperBound <= bytes.count)
            }
        }
        #expect(accepted > 0)  // payload-only corruption still passes: no UDP checksum
    }

    @Test func arpRequestsForUsAreAnsweredInPlace() {
        var request = [UInt8](repeating: 0, count: EthernetUDP.arpPacketSize)
        request.withUnsafeMutableBytes {
            EthernetUDP.writeARPRequest(
                to: $0.baseAddress!, senderMAC: Self.theirMAC, senderIP: Self.them.ipv4, target: Self.us.ipv4)
        }
        #expect(Self.classify(request) == .arpRequest)
        #expect(Self.classify(request + [0, 0, 0, 0]) == .arpRequest)  // padded

        var reply = request
        let rewritten = reply.withUnsafeMutableBytes {
            EthernetUDP.rewriteARPRequestAsReply($0, mac: Self.ourMAC, ipv4: Self.us.ipv4)
        }
        #expect(rewritten)
        #expect(Array(reply[0..<6]) == Self.theirMAC.bytes)  // to the asker
        #expect(Array(reply[6..<12]) == Self.ourMAC.bytes)
        #expect(reply[12] == 0x08 && reply[13] == 0x06)
        #expect(reply[20] == 0 && reply[21] == 2)  // reply
        #expect(Array(reply[22..<28]) == Self.ourMAC.bytes)
        #expect(Array(reply[28..<32]) == [10, 0, 0, 1])
        #expect(Array(reply[32..<38]) == Self.theirMAC.bytes)
        #expect(Array(reply[38..<42]) == [10, 0, 0, 2])
        // Our own reply, seen again, is not a request.
        #expect(Self.classify(reply) == .drop(.arpIgnored))

        var forSomeoneElse = request
        forSomeoneElse[41] = 99
        #expect(Self.classify(forSomeoneElse) == .drop(.arpIgnored))
        #expect(Self.classify(Array(request[0..<41])) == .drop(.arpIgnored))

        var short = [UInt8](repeating: 0, count: 41)
        #expect(
            short.withUnsafeMutableBytes { EthernetUDP.rewriteARPRequestAsReply($0, mac: Self.ourMAC, ipv4: 1) }
                == false)
    }

    @Test func ethernetAddressesParseAndPrint() {
        let mac = EthernetAddress(parsing: "02:00:0a:FF:00:01")
        #expect(mac?.bytes == [2, 0, 10, 255, 0, 1])
        #expect(mac?.description == "02:00:0a:ff:00:01")
        #expect(EthernetAddress(parsing: "02-00-0a-ff-00-01") == mac)
        for bad in [
            "", "02:00:0a:ff:00", "02:00:0a:ff:00:01:02", "02:00:0a:ff:00:1g", "002:00:0a:ff:00:01", "02::0a:ff:00:01",
        ] {
            #expect(EthernetAddress(parsing: bad) == nil, "\(bad)")
        }
        #expect(EthernetAddress(bytes: [1, 2, 3]) == nil)
        #expect(EthernetAddress.broadcast.bytes == [UInt8](repeating: 255, count: 6))
    }

    /// The fuzzer's Ethernet seeds (`Tests/Fuzz/corpus/wire/eth-*`) are what
    /// its packet half starts from: each must reach the verdict it stands for
    /// at the node the fuzzer plays (`WireFuzz.swift`), or the fuzzer would
    /// explore only drops.
    @Test func theFuzzCorpusEthernetSeedsReachEveryVerdict() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/corpus/wire").standardized
        let node = PeerAddress(ipv4: 0x0A00_0001, port: 7000)
        func verdict(_ name: String) throws -> EthernetUDP.Verdict {
            let bytes = try [UInt8](Data(contentsOf: corpus.appendingPathComponent(name)))
            return bytes.withUnsafeBytes {
                EthernetUDP.classify($0, mac: Self.ourMAC, local: node, siblings: 7001...7002)
            }
        }
        let them = PeerAddress(ipv4: 0x0A00_0002, port: 7000)
        for name in ["eth-udp-data", "eth-udp-ack-ip-options"] {
            guard case .frame(let payload, let source) = try verdict(name) else {
                Issue.record("\(name): \(try verdict(name))")
                continue
            }
            #expect(source == them)
            let bytes = try [UInt8](Data(contentsOf: corpus.appendingPathComponent(name)))
            #expect(throws: Never.self, "\(name) carries a DIOS frame") {
                try bytes.withUnsafeBytes { _ = try FrameHeader.decode(UnsafeRawBufferPointer(rebasing: $0[payload])) }
            }
        }
        #expect(try verdict("eth-udp-sibling") == .sibling(port: 7001))
        #expect(try verdict("eth-arp-request") == .arpRequest)
    }
}

/// A small deterministic generator, so a failure reproduces.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

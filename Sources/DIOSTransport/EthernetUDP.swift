public import DIOSWire

/// A 48-bit Ethernet (MAC) address.
public struct EthernetAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address in the low 48 bits, first byte on the wire most significant.
    public let value: UInt64

    /// ff:ff:ff:ff:ff:ff.
    public static let broadcast = EthernetAddress(value: 0xFFFF_FFFF_FFFF)

    /// An address from its 48-bit value (higher bits are ignored).
    public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    /// An address from exactly six bytes; nil for any other count.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.init(value: bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    /// Parses "02:00:00:00:00:01" (or with dashes); nil when it is not six hex octets.
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(omittingEmptySubsequences: false) { $0 == ":" || $0 == "-" }
        guard parts.count == 6 else { return nil }
        var bytes = [UInt8]()
        for part in parts {
            guard (1...2).contains(part.count), let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.init(bytes: bytes)
    }

    /// The six bytes, in wire order.
    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * $0)) } }

    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    /// Writes the six bytes at `p`. `p` must have 6 writable bytes.
    func write(to p: UnsafeMutableRawPointer) {
        for i in 0..<6 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64(i))), toByteOffset: i, as: UInt8.self)
        }
    }

    /// Reads six bytes at `offset`; the caller has checked `offset + 6 <= packet.count`.
    init(reading packet: UnsafeRawBufferPointer, at offset: Int) {
        var v: UInt64 = 0
        for i in 0..<6 { v = v << 8 | UInt64(packet[offset + i]) }
        self.init(value: v)
    }
}

/// Ethernet II + IPv4 + UDP framing around DIOS frames: the headers a DPDK
/// transport writes and checks itself (a UDP socket leaves them to the kernel),
/// and the ARP reply that lets ordinary hosts find a DPDK node.
///
/// Pure functions over raw buffers, so they are tested without DPDK. Every read
/// is preceded by a bounds check against the buffer's count.
public enum EthernetUDP {
    public static let ethernetHeaderSize = 14
    public static let ipv4HeaderSize = 20
    public static let udpHeaderSize = 8
    /// Ethernet + IPv4 (no options) + UDP: what `writeHeaders` puts before a frame.
    public static let headerSize = ethernetHeaderSize + ipv4HeaderSize + udpHeaderSize
    /// An ARP packet for IPv4 over Ethernet, Ethernet header included.
    public static let arpPacketSize = ethernetHeaderSize + 28
    public static let etherTypeIPv4: UInt16 = 0x0800
    public static let etherTypeARP: UInt16 = 0x0806
    public static let ipProtocolUDP: UInt8 = 17
    /// The largest UDP payload in a standard 1500-byte MTU: 1500 − 20 − 8.
    public static let maxPayload = 1472

    /// Why a received packet was not handed on.
    public enum DropReason: String, Sendable, CaseIterable {
        /// Too short for its headers, lengths that disagree, a bad IP version or header length.
        case malformed
        /// Neither IPv4 nor ARP (IPv6, VLAN-tagged, LLDP, ...).
        case notIPv4
        /// IPv4 but not UDP.
        case notUDP
        /// Addressed to another MAC or IPv4 address.
        case notForUs
        /// UDP to our address but another port.
        case wrongPort
        /// An IPv4 fragment: DIOS frames fit one datagram, so fragments are never ours.
        case fragment
        /// The IPv4 header checksum does not match.
        case badChecksum
        /// ARP that is not a request for our address (replies, gratuitous ARP, others' requests).
        case arpIgnored
        /// For another instance of this node, whose handoff ring was full.
        case siblingBusy
    }

    /// What a received packet is.
    public enum Verdict: Equatable, Sendable {
        /// A UDP datagram for us: its payload (the DIOS frame) lies at `payload` in the packet.
        case frame(payload: Range<Int>, source: PeerAddress)
        /// An ARP request for our IPv4 address.
        case arpRequest
        /// A UDP datagram to our address for a port in `siblings`: another
        /// instance of this node listens there (its device queue is not ours).
        case sibling(port: UInt16)
        case drop(DropReason)
    }

    /// Writes Ethernet, IPv4 and UDP headers (`headerSize` bytes) at `p` for a
    /// datagram of `payloadLength` bytes from `source` to `destination`. The IPv4
    /// header checksum is computed; the UDP checksum is 0 (none, allowed in IPv4).
    /// The don't-fragment bit is set and the TTL is 64.
    ///
    /// - Precondition: `p` has `headerSize` writable bytes; `payloadLength <= maxPayload`.
    public static func writeHeaders(
        to p: UnsafeMutableRawPointer, sourceMAC: EthernetAddress, destinationMAC: EthernetAddress,
        source: PeerAddress, destination: PeerAddress, payloadLength: Int, identification: UInt16
    ) {
        precondition(payloadLength >= 0 && payloadLength <= maxPayload, "payload does not fit a 1500-byte MTU")
        destinationMAC.write(to: p)
        sourceMAC.write(to: p + 6)
        store16(etherTypeIPv4, p, 12)
        let ip = p + ethernetHeaderSize
        ip.storeBytes(of: 0x45, toByteOffset: 0, as: UInt8.self)  // version 4, 5 words
        ip.storeBytes(of: 0, toByteOffset: 1, as: UInt8.self)  // DSCP/ECN
        store16(UInt16(ipv4HeaderSize + udpHeaderSize + payloadLength), ip, 2)
        store16(identification, ip, 4)
        store16(0x4000, ip, 6)  // don't fragment, offset 0
        ip.storeBytes(of: 64, toByteOffset: 8, as: UInt8.self)  // TTL
        ip.storeBytes(of: ipProtocolUDP, toByteOffset: 9, as: UInt8.self)
        store16(0, ip, 10)
        store32(source.ipv4, ip, 12)
        store32(destination.ipv4, ip, 16)
        store16(checksum(UnsafeRawBufferPointer(start: ip, count: ipv4HeaderSize)), ip, 10)
        let udp = ip + ipv4HeaderSize
        store16(source.port, udp, 0)
        store16(destination.port, udp, 2)
        store16(UInt16(udpHeaderSize + payloadLength), udp, 4)
        store16(0, udp, 6)
    }

    /// Classifies a received Ethernet packet for a node with `mac` at `local`:
    /// a UDP datagram to `local` (IPv4 header checksum checked, fragments, IP
    /// options and trailing Ethernet padding handled), an ARP request for
    /// `local.ipv4`, or a drop with its reason. The UDP checksum is not checked:
    /// a kernel sender over veth may leave it to an offload that never happens.
    /// A datagram to a port in `siblings` (the node's other instances) is
    /// `.sibling`, checked as far as one to `local`.
    public static func classify(
        _ packet: UnsafeRawBufferPointer, mac: EthernetAddress, local: PeerAddress, siblings: ClosedRange<UInt16>? = nil
    ) -> Verdict {
        let count = packet.count
        guard count >= ethernetHeaderSize else { return .drop(.malformed) }
        let destinationMAC = EthernetAddress(reading: packet, at: 0)
        let etherType = load16(packet, 12)
        if etherType == etherTypeARP {
            return isARPRequest(packet, mac: mac, ipv4: local.ipv4) ? .arpRequest : .drop(.arpIgnored)
        }
        guard etherType == etherTypeIPv4 else { return .drop(.notIPv4) }
        guard destinationMAC == mac else { return .drop(.notForUs) }
        let ip = ethernetHeaderSize
        guard count >= ip + ipv4HeaderSize else { return .drop(.malformed) }
        let versionAndLength = packet[ip]
        let ipHeaderLength = Int(versionAndLength & 0x0F) * 4
        guard versionAndLength >> 4 == 4, ipHeaderLength >= ipv4HeaderSize, count >= ip + ipHeaderLength else {
            return .drop(.malformed)
        }
        let totalLength = Int(load16(packet, ip + 2))
        // Frames shorter than 60 bytes arrive padded: the IP total length, not the
        // Ethernet length, says where the datagram ends.
        guard totalLength >= ipHeaderLength, ip + totalLength <= count else { return .drop(.malformed) }
        guard checksum(UnsafeRawBufferPointer(rebasing: packet[ip..<(ip + ipHeaderLength)])) == 0 else {
            return .drop(.badChecksum)
        }
        guard load16(packet, ip + 6) & 0x3FFF == 0 else { return .drop(.fragment) }  // MF or an offset
        guard packet[ip + 9] == ipProtocolUDP else { return .drop(.notUDP) }
        guard load32(packet, ip + 16) == local.ipv4 else { return .drop(.notForUs) }
        let udp = ip + ipHeaderLength
        guard totalLength >= ipHeaderLength + udpHeaderSize else { return .drop(.malformed) }
        let udpLength = Int(load16(packet, udp + 4))
        guard udpLength >= udpHeaderSize, udpLength <= totalLength - ipHeaderLength else { return .drop(.malformed) }
        let port = load16(packet, udp + 2)
        guard port == local.port else {
            if let siblings, siblings.contains(port) { return .sibling(port: port) }
            return .drop(.wrongPort)
        }
        let source = PeerAddress(ipv4: load32(packet, ip + 12), port: load16(packet, udp))
        return .frame(payload: (udp + udpHeaderSize)..<(udp + udpLength), source: source)
    }

    /// True for an ARP request (Ethernet, IPv4) asking for `ipv4`, sent to us or broadcast.
    static func isARPRequest(_ packet: UnsafeRawBufferPointer, mac: EthernetAddress, ipv4: UInt32) -> Bool {
        guard packet.count >= arpPacketSize else { return false }
        let destination = EthernetAddress(reading: packet, at: 0)
        guard destination == mac || destination == .broadcast else { return false }
        let arp = ethernetHeaderSize
        return load16(packet, arp) == 1  // hardware: Ethernet
            && load16(packet, arp + 2) == etherTypeIPv4  // protocol: IPv4
            && packet[arp + 4] == 6 && packet[arp + 5] == 4  // address lengths
            && load16(packet, arp + 6) == 1  // operation: request
            && load32(packet, arp + 24) == ipv4  // target protocol address
    }

    /// Turns an ARP request (one `classify` called `.arpRequest`) into the reply,
    /// in place: "`ipv4` is at `mac`", addressed to the asker. Returns false, and
    /// changes nothing, when `packet` is shorter than an ARP packet.
    @discardableResult
    public static func rewriteARPRequestAsReply(
        _ packet: UnsafeMutableRawBufferPointer, mac: EthernetAddress, ipv4: UInt32
    ) -> Bool {
        guard packet.count >= arpPacketSize, let p = packet.baseAddress else { return false }
        let readable = UnsafeRawBufferPointer(packet)
        let arp = ethernetHeaderSize
        let senderMAC = EthernetAddress(reading: readable, at: arp + 8)
        let senderIP = load32(readable, arp + 14)
        senderMAC.write(to: p)  // Ethernet destination: the asker
        mac.write(to: p + 6)
        store16(2, p + arp, 6)  // operation: reply
        mac.write(to: p + arp + 8)  // sender hardware address: us
        store32(ipv4, p + arp, 14)
        senderMAC.write(to: p + arp + 18)  // target: the asker
        store32(senderIP, p + arp, 24)
        return true
    }

    /// Writes an ARP request "who has `target`? tell `senderIP` at `senderMAC`",
    /// broadcast, at `p` (`arpPacketSize` writable bytes). For tests and tools.
    public static func writeARPRequest(
        to p: UnsafeMutableRawPointer, senderMAC: EthernetAddress, senderIP: UInt32, target: UInt32
    ) {
        EthernetAddress.broadcast.write(to: p)
        senderMAC.write(to: p + 6)
        store16(etherTypeARP, p, 12)
        let arp = p + ethernetHeaderSize
        store16(1, arp, 0)
        store16(etherTypeIPv4, arp, 2)
        arp.storeBytes(of: 6, toByteOffset: 4, as: UInt8.self)
        arp.storeBytes(of: 4, toByteOffset: 5, as: UInt8.self)
        store16(1, arp, 6)
        senderMAC.write(to: arp + 8)
        store32(senderIP, arp, 14)
        EthernetAddress(value: 0).write(to: arp + 18)
        store32(target, arp, 24)
    }

    /// The Internet checksum (RFC 1071) of `bytes`: written into a header whose
    /// checksum field is 0, it makes the checksum of the whole header 0.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(truncatingIfNeeded: sum)
    }

    // Big-endian access. Loads take a buffer and an offset the caller has
    // bounds-checked; stores take a pointer with room the caller guarantees.
    // `storeBytes(of:toByteOffset:as:)` allows unaligned offsets (SE-0349).

    @inline(__always) static func load16(_ b: UnsafeRawBufferPointer, _ offset: Int) -> UInt16 {
        UInt16(b[offset]) << 8 | UInt16(b[offset + 1])
    }

    @inline(__always) static func load32(_ b: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(load16(b, offset)) << 16 | UInt32(load16(b, offset + 2))
    }

    @inline(__always) static func store16(_ v: UInt16, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always) static func store32(_ v: UInt32, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
}

// libFuzzer entry point for everything DIOS decodes from the network: the frame
// header, a session fed the decoded frame (acknowledgements, credit, fragments,
// epochs), the name-service delta, the remote-call messages, and the Ethernet,
// IPv4, UDP and ARP headers a DPDK transport parses itself
// (`EthernetUDP.classify`, then the DIOS frame in the datagram it finds, or the
// ARP reply written over a request). Built by Tests/Fuzz/run.sh with
// `swiftc -sanitize=fuzzer,address`, compiled together with the sources of
// DIOSCore and DIOSWire and DIOSTransport's EthernetUDP.swift as one module. A
// crash, a broken invariant (a `precondition` below) or a sanitizer report
// fails the run.

nonisolated(unsafe) let local = InstanceID(node: 1, core: 0)
nonisolated(unsafe) let remote = InstanceID(node: 2, core: 0)

/// A transport that accepts and forgets what the session sends.
final class Sink: FrameTransport {
    let localAddress = PeerAddress(ipv4: 1, port: 1)
    let maxFrameSize = 1472
    var readinessFD: Int32? { nil }
    func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool { frame.count <= maxFrameSize }
    func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int { 0 }
}

nonisolated(unsafe) let sink = Sink()
nonisolated(unsafe) let session = Session(
    local: local, peer: remote, address: PeerAddress(ipv4: 2, port: 2),
    configuration: SessionConfiguration(window: 8, maxMessageSize: 4096), now: 1, seed: 1)
nonisolated(unsafe) var clock: UInt64 = 1

// The DPDK node the packets are for (the seeds `eth-*` in the corpus are
// addressed to it): instance 0 of three, on ports 7000-7002.
let nodeMAC = EthernetAddress(value: 0x02_00_00_00_00_01)
let nodeAddress = PeerAddress(ipv4: 0x0A00_0001, port: 7000)
let siblingPorts: ClosedRange<UInt16> = 7001...7002

/// The input as an Ethernet packet, as `DPDKTransport.receive` takes it.
func classifyAsPacket(_ bytes: UnsafeRawBufferPointer) {
    switch EthernetUDP.classify(bytes, mac: nodeMAC, local: nodeAddress, siblings: siblingPorts) {
    case .frame(let payload, _):
        precondition(payload.lowerBound >= EthernetUDP.headerSize && payload.upperBound <= bytes.count)
        if let header = try? FrameHeader.decode(UnsafeRawBufferPointer(rebasing: bytes[payload])) {
            precondition(Int(header.payloadLength) == payload.count - FrameHeader.size)
        }
    case .arpRequest:
        precondition(bytes.count >= EthernetUDP.arpPacketSize)
        // Answered in place, as the transport does: the reply is for us no more.
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { copy.deallocate() }
        copy.copyMemory(from: bytes)
        precondition(EthernetUDP.rewriteARPRequestAsReply(copy, mac: nodeMAC, ipv4: nodeAddress.ipv4))
        precondition(
            EthernetUDP.classify(UnsafeRawBufferPointer(copy), mac: nodeMAC, local: nodeAddress) == .drop(.arpIgnored))
    case .sibling(let port):
        precondition(siblingPorts.contains(port))
    case .drop:
        break
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    clock &+= 1_000
    if let header = try? FrameHeader.decode(bytes) {
        precondition(Int(header.payloadLength) == size - FrameHeader.size)
        var h = header
        h.destination = local
        h.source = remote
        let payload = UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size...])
        _ = session.receive(h, payload: payload, now: clock, via: sink) { message in
            precondition(message.count <= 4096)
            return message.count % 3 != 0  // sometimes refuse, as a full ring does
        }
        _ = session.poll(now: clock, via: sink) { _ in true }
    }
    _ = try? NameDelta.decode(bytes)
    _ = try? RemoteMessage.decode(bytes)
    classifyAsPacket(bytes)
    return 0
}

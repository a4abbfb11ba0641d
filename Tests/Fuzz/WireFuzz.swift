// libFuzzer entry point for everything DIOS decodes from the network: the frame
// header, a session fed the decoded frame (acknowledgements, credit, fragments,
// epochs), the name-service delta, the remote-call messages, and the Ethernet,
// IPv4, UDP and ARP headers a DPDK transport parses itself
// (`EthernetUDP.classify`, then the DIOS frame in the datagram it finds, or the
// ARP reply written over a request); and protected frames: any input handed to
// an endpoint that authenticates its frames is never delivered and changes no
// session, and a frame sealed for real with one bit flipped anywhere is refused
// (unflipped, it opens once, then is refused as a replay). Built by Tests/Fuzz/run.sh with
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

/// A transport that hands over one frame per poll: the fuzzer's input.
final class OneFrame: FrameTransport {
    let localAddress = PeerAddress(ipv4: 1, port: 1)
    let maxFrameSize = 1472
    var readinessFD: Int32? { nil }
    var frame: UnsafeRawBufferPointer? = nil
    func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool { true }
    func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
        guard let f = frame else { return 0 }
        frame = nil
        body(f, PeerAddress(ipv4: 2, port: 2))
        return 1
    }
}

nonisolated(unsafe) let security = WireSecurity(
    secret: ClusterSecret(bytes: [UInt8](repeating: 7, count: 32))!, protection: .authenticated, counterStart: 1)
nonisolated(unsafe) let oneFrame = OneFrame()
nonisolated(unsafe) let guarded = WireEndpoint(
    local: local, transport: oneFrame, peers: [remote: PeerAddress(ipv4: 2, port: 2)],
    configuration: SessionConfiguration(window: 8, maxMessageSize: 4096), now: 1, seed: 1, security: security)
/// The peer's side of the key: seals frames as `remote` would, in epoch 77.
nonisolated(unsafe) let peerSealer = FrameSealer(security, local: remote, peer: local, epoch: 77)
/// This side's: opens them.
nonisolated(unsafe) let opener = FrameSealer(security, local: local, peer: remote, epoch: 5)

func fuzzProtected(_ bytes: UnsafeRawBufferPointer) {
    // As it came: without the secret no input carries a valid tag, so none
    // is delivered, none moves a session, and none changes a peer's state.
    let before = guarded.sessions[0].counters
    let epoch = guarded.sessions[0].peerEpoch
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
    defer { copy.deallocate() }
    if bytes.count > 0 { copy.copyMemory(from: bytes) }
    oneFrame.frame = UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count])
    _ = guarded.poll(
        now: clock, timers: false, deliver: { _, _ in preconditionFailure("an unauthenticated frame was delivered") },
        changed: { _, _ in preconditionFailure("an unauthenticated frame changed a peer's state") })
    precondition(guarded.sessions[0].counters == before && guarded.sessions[0].peerEpoch == epoch)

    // Sealed for real, then altered by one bit: refused; as sealed: opened
    // once, with its bytes as they were, then refused as a replay.
    guard bytes.count > FrameHeader.size else { return }
    let n = min(bytes.count - 1, 1400)
    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: n + WireSecurity.trailerSize, alignment: 8)
    defer { frame.deallocate() }
    frame.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[1...n]))
    frame.storeBytes(of: UInt32(77).bigEndian, toByteOffset: 16, as: UInt32.self)  // the sealer's epoch
    _ = peerSealer.seal(frame.baseAddress!, length: n)
    let sealed = Array(frame)
    let at = Int(bytes[0]) * 131 % frame.count
    frame[at] ^= 1 << (bytes[0] % 8)
    if case .success = opener.open(frame) { preconditionFailure("an altered frame opened (byte \(at))") }
    frame[at] ^= 1 << (bytes[0] % 8)
    guard case .success(let plain) = opener.open(frame) else { preconditionFailure("a sealed frame did not open") }
    precondition(plain.count == n && Array(plain) == Array(sealed[0..<n]))
    guard case .failure(.replayed) = opener.open(frame) else { preconditionFailure("a frame opened twice") }
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
    fuzzProtected(bytes)
    return 0
}

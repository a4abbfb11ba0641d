// libFuzzer entry point for everything DIOS decodes from the network: the frame
// header, a session fed the decoded frame (acknowledgements, credit, fragments,
// epochs), and the name-service delta. Built by Tests/Fuzz/run.sh with
// `swiftc -sanitize=fuzzer,address`, compiled together with the sources of
// DIOSCore and DIOSWire as one module. A crash or sanitizer report fails the run.

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
    return 0
}

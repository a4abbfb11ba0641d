/// Where a DIOS frame goes: an IPv4 address and UDP port. Every transport
/// (kernel UDP sockets, DPDK queues) speaks UDP/IPv4, so one address form
/// serves all of them and a DPDK node can talk to a socket node.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    /// The IPv4 address in host byte order (10.0.0.1 is 0x0A00_0001).
    public var ipv4: UInt32
    /// The UDP port in host byte order.
    public var port: UInt16

    public init(ipv4: UInt32, port: UInt16) {
        self.ipv4 = ipv4
        self.port = port
    }

    /// Parses dotted-quad text ("127.0.0.1"); nil when it is not one.
    public init?(_ text: some StringProtocol, port: UInt16) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard part.count <= 3, let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        self.init(ipv4: value, port: port)
    }

    public var ipv4Text: String {
        "\(ipv4 >> 24).\(ipv4 >> 16 & 0xFF).\(ipv4 >> 8 & 0xFF).\(ipv4 & 0xFF)"
    }

    public var description: String { "\(ipv4Text):\(port)" }
}

/// A datagram transport that one kernel instance polls: a kernel UDP socket, or a
/// DPDK RX/TX queue pair. It carries DIOS frames (the UDP payload: a `FrameHeader`
/// and its payload); it adds and strips whatever lies below (Ethernet, IPv4, UDP).
///
/// A transport belongs to one instance and is used only from that instance's
/// thread, so it needs no locks. It is unreliable: the session above it numbers,
/// acknowledges and retransmits frames.
public protocol FrameTransport: AnyObject {
    /// The address peers send to in order to reach this transport.
    var localAddress: PeerAddress { get }
    /// The largest DIOS frame (UDP payload) one datagram carries.
    var maxFrameSize: Int { get }
    /// A file descriptor that becomes readable when frames wait, so an idle
    /// instance can sleep on it; nil when the transport can only be polled.
    var readinessFD: Int32? { get }
    /// Sends `frame` as one datagram to `peer`. False when it could not be queued
    /// now (a full transmit queue); the frame is then dropped, as on a wire.
    func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool
    /// Hands each frame waiting now, with its source, to `body` (the bytes are valid
    /// only during the call), up to a burst. Never blocks. Returns how many.
    func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int
    /// Starts keeping frames: until `flush()`, `send` may copy a frame aside
    /// and send it with the others in one burst (one system call or one
    /// descriptor-ring doorbell for several frames).
    func hold()
    /// Sends what `hold()` kept, and sends at once again.
    func flush()

    // In-place frames: a transport whose frames live in buffers of its own (DPDK:
    // mbufs) lends one out, the frame is written in it — by the session, and
    // the message's payload by the task itself, through `beginWrite` — and it is
    // sent from there, and sent again from there if it must be, with no copy.

    /// A buffer to write one frame (up to `maxFrameSize` bytes) in, or nil when
    /// this transport has no such buffers (it copies every frame) or none is free.
    func allocateFrame() -> TransportFrame?
    /// Sends the first `length` bytes of `frame` as one datagram to `peer`. The
    /// caller keeps the frame (the transport takes a hold of its own for the
    /// device) and may send it again. True when queued, as for `send`.
    func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool
    /// Whether `frame` is held by nothing but its owner now: a frame still
    /// queued in a device from an earlier `sendFrame` must not be written again.
    func isIdle(_ frame: TransportFrame) -> Bool
    /// Gives `frame` back; it must not be used again.
    func releaseFrame(_ frame: TransportFrame)

    // Received frames kept: a transport whose received frames live in buffers
    // of its own (DPDK: mbufs) lets the receiver keep one past `receive`, so a
    // message is read where it arrived.

    /// During `receive`'s `body`: keeps the frame being handed over, if `bytes`
    /// lies in it, so it outlives the call; its handle is for
    /// `releaseReceived`. Nil when this transport copies its frames (kernel
    /// sockets) or `bytes` is elsewhere (a copy the caller made).
    func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer?
    /// Gives back a frame `keepReceived` kept.
    func releaseReceived(_ handle: OpaquePointer)

    /// The peer at `address` said it is stopping. A transport whose link
    /// reaches that peer alone (memif) stops using the link until the peer is
    /// back, so the peer's going cannot pull the link from under a poll.
    func peerLeaving(_ address: PeerAddress)
}

/// A frame lent by a transport (`FrameTransport.allocateFrame()`): `bytes` is
/// where the DIOS frame starts, with room for `capacity` bytes; `handle` is the
/// transport's own (DPDK: the `rte_mbuf`).
public struct TransportFrame: @unchecked Sendable, Equatable {
    public let handle: OpaquePointer
    public let bytes: UnsafeMutableRawPointer
    public let capacity: Int

    public init(handle: OpaquePointer, bytes: UnsafeMutableRawPointer, capacity: Int) {
        self.handle = handle
        self.bytes = bytes
        self.capacity = capacity
    }
}

extension FrameTransport {
    /// A transport that cannot batch sends at once: nothing to keep.
    public func hold() {}
    public func flush() {}

    /// A transport that copies every frame (kernel sockets): none to lend or keep.
    public func allocateFrame() -> TransportFrame? { nil }
    public func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? { nil }
    public func releaseReceived(_ handle: OpaquePointer) {
        preconditionFailure("releaseReceived on a transport that keeps no received frames")
    }
    public func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool {
        send(UnsafeRawBufferPointer(start: frame.bytes, count: length), to: peer)
    }
    public func isIdle(_ frame: TransportFrame) -> Bool { true }
    public func releaseFrame(_ frame: TransportFrame) {}
    /// A transport whose link is shared by many peers (sockets, af_packet) goes on.
    public func peerLeaving(_ address: PeerAddress) {}
}

import DIOSWire

/// A simulated wire for testing sessions in one process: frames sent to an
/// address land in that address's queue, to be received on the next poll. The
/// clock is simulated too, so timeouts run instantly and runs are deterministic.
final class Loopback {
    var now: UInt64 = 1_000_000_000
    var queues: [PeerAddress: [[UInt8]]] = [:]
    /// Addresses whose frames vanish (a dead or partitioned node).
    var silenced: Set<PeerAddress> = []

    final class Port: FrameTransport {
        let network: Loopback
        let localAddress: PeerAddress
        let maxFrameSize = 1472
        var readinessFD: Int32? { nil }

        init(_ network: Loopback, _ address: PeerAddress) {
            self.network = network
            localAddress = address
        }

        func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
            if network.silenced.contains(localAddress) || network.silenced.contains(peer) { return true }
            network.queues[peer, default: []].append(Array(frame))
            return true
        }

        // In-place frames, as DPDK lends mbufs: with `lending`, a fixed pool of
        // buffers; a frame is sent by copying it onto the wire (as a device
        // would), and each one lent out is tracked so a test sees leaks and
        // double releases.
        var lending = false
        private var free: [UnsafeMutableRawPointer] = (0..<512).map { _ in .allocate(byteCount: 1472, alignment: 64) }
        private(set) var out: Set<UnsafeMutableRawPointer> = []

        func allocateFrame() -> TransportFrame? {
            guard lending, let buffer = free.popLast() else { return nil }
            out.insert(buffer)
            return TransportFrame(handle: OpaquePointer(buffer), bytes: buffer, capacity: maxFrameSize)
        }

        func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool {
            precondition(out.contains(frame.bytes), "sending a frame that is not lent")
            return send(UnsafeRawBufferPointer(start: frame.bytes, count: length), to: peer)
        }

        func releaseFrame(_ frame: TransportFrame) {
            precondition(out.remove(frame.bytes) != nil, "releasing a frame twice, or one never lent")
            free.append(frame.bytes)
        }

        func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
            let frames = network.queues[localAddress] ?? []
            network.queues[localAddress] = []
            for f in frames { f.withUnsafeBytes { body($0, localAddress) } }
            return frames.count
        }
    }

    func port(_ n: UInt16) -> Port { Port(self, PeerAddress(ipv4: 0x7F00_0001, port: n)) }
}

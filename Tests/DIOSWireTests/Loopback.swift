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

        func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
            let frames = network.queues[localAddress] ?? []
            network.queues[localAddress] = []
            for f in frames { f.withUnsafeBytes { body($0, localAddress) } }
            return frames.count
        }
    }

    func port(_ n: UInt16) -> Port { Port(self, PeerAddress(ipv4: 0x7F00_0001, port: n)) }
}

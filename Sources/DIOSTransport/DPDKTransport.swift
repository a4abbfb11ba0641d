#if DIOS_DPDK
public import DIOSWire
#if canImport(Glibc)
import Glibc
#endif
import CDPDK
import CLinux
import Synchronization

// MARK: - The transport

/// The DIOS wire over one RX/TX queue pair of a DPDK port: each frame travels as
/// one Ethernet/IPv4/UDP datagram, so DPDK nodes and kernel-socket nodes
/// (`UDPTransport`) talk to each other.
///
/// - `send` copies the frame into a fresh mbuf behind the headers it writes; the
///   destination MAC comes from a static neighbour table (no ARP resolution: an
///   unknown neighbour is refused and counted, never broadcast).
/// - `receive` hands on UDP payloads in place, in the mbufs (no copy), drops and
///   counts anything else, and answers ARP requests for the local address so
///   ordinary hosts can reach the node.
///
/// One per (port, queue), used from one thread only. Polled: `readinessFD` is nil.
///
/// With several queues on one port (a node of several instances, each with
/// its queue pair), the device decides which queue an arriving packet lands on
/// (memif: the queue matching the peer's sending queue; af_packet: a fanout
/// hash), not the UDP port that names the instance. A `DPDKSteering` shared by
/// the node's transports hands such a packet's mbuf to the instance it is for,
/// without copying it; without one, it is dropped as `wrongPort`.
public final class DPDKTransport: FrameTransport {
    /// What the transport did with frames and packets; all counts since creation.
    public struct Counters: Sendable, Equatable {
        /// Frames handed to the device.
        public var sent: UInt64 = 0
        /// Of those, frames sent from an mbuf lent by `allocateFrame` (no copy).
        public var sentInPlace: UInt64 = 0
        /// Frames refused because the TX queue was full (or the link down).
        public var sendQueueFull: UInt64 = 0
        /// Frames refused because the destination has no neighbour-table entry.
        public var unknownNeighbour: UInt64 = 0
        /// Frames refused because they exceed `maxFrameSize`.
        public var oversize: UInt64 = 0
        /// Frames refused because the mbuf pool was empty.
        public var noMbuf: UInt64 = 0
        /// Frames handed to `receive`'s body.
        public var received: UInt64 = 0
        /// Of those, frames kept past `receive` (`keepReceived`): read in place.
        public var kept: UInt64 = 0
        /// Received packets dropped, by reason (`EthernetUDP.DropReason`), plus
        /// multi-segment packets counted as malformed.
        public var dropped: [EthernetUDP.DropReason: UInt64] = [:]
        /// ARP replies sent for the local address.
        public var arpReplies: UInt64 = 0
        /// Packets for another instance of the node, handed to it.
        public var handedOver: UInt64 = 0

        /// All dropped packets.
        public var droppedTotal: UInt64 { dropped.values.reduce(0, +) }
    }

    public let port: DPDKPort
    public let queue: UInt16
    public let localAddress: PeerAddress
    public let maxFrameSize = EthernetUDP.maxPayload
    public var readinessFD: Int32? { nil }
    @exclusivity(unchecked) public internal(set) var counters = Counters()
    /// Frames `send` collects before one `rte_eth_tx_burst` (1: each goes at once).
    public let txBatch: Int
    /// Packets one `receive` takes from the device at most.
    public let rxBurst: Int

    @exclusivity(unchecked) var neighbours: [UInt32: EthernetAddress]
    /// The entry of `neighbours` the last frame went to: a run of frames
    /// usually goes to one peer, and hashing the address (SipHash) costs more
    /// than the rest of the lookup. Forgotten whenever `neighbours` changes.
    @exclusivity(unchecked) var lastNeighbour: (ipv4: UInt32, mac: EthernetAddress)? = nil
    let rxMbufs: UnsafeMutablePointer<OpaquePointer?>
    let txMbufs: UnsafeMutablePointer<OpaquePointer?>
    @exclusivity(unchecked) var txPending = 0
    /// Room for frames kept between `hold()` and `flush()` (at least `txBatch`).
    let txCapacity: Int
    @exclusivity(unchecked) var holding = false
    @exclusivity(unchecked) var identification: UInt16 = 0
    @exclusivity(unchecked) var receiving = false
    /// While `receive`'s body runs: the frame it has (index in `rxMbufs`, and
    /// its packet's bytes), for `keepReceived`.
    @exclusivity(unchecked) var handing = -1
    @exclusivity(unchecked) var handingBytes = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Mbufs of the burst `receive` is handling that are no longer its to free
    /// (kept, handed to a sibling, sent back as an ARP reply).
    @exclusivity(unchecked) var taken = 0
    /// The node's handoff between its instances' queues, and this one's place in it.
    public let steering: DPDKSteering?
    public let instance: Int

    /// A transport on `queue` of `port`, reachable at `localAddress`.
    ///
    /// - Parameters:
    ///   - neighbours: IPv4 address (host order) → the MAC to send to for it
    ///     (6 bytes): peers on the link, or the gateway's MAC for each remote peer.
    ///   - steering: for a node of several instances on this port, the handoff
    ///     between them; `instance` is this transport's place in it, and
    ///     `localAddress.port` must be `steering.basePort + instance`.
    ///   - txBatch: with more than 1, `send` queues frames and the burst goes out
    ///     when `txBatch` frames wait, at the next `receive`, or at `flushTX()`.
    ///     Between `hold()` and `flush()` frames wait for `flush()` (or until
    ///     32 wait), whatever `txBatch` is.
    ///     A frame a full TX ring then refuses is dropped and counted in
    ///     `sendQueueFull` though `send` returned true, as on a wire.
    /// - Throws: `TransportError.configuration` for a queue the port lacks, a
    ///   neighbour MAC that is not 6 bytes, or a bad batch size.
    public init(
        port: DPDKPort, queue: Int, localAddress: PeerAddress, neighbours: [UInt32: [UInt8]],
        steering: DPDKSteering? = nil, instance: Int = 0, txBatch: Int = 1, rxBurst: Int = 32
    ) throws(TransportError) {
        if let steering {
            guard (0..<steering.instances).contains(instance),
                Int(localAddress.port) == Int(steering.basePort) + instance
            else {
                throw .configuration(
                    "instance \(instance) at port \(localAddress.port) is not one of the steering's "
                        + "\(steering.instances) from port \(steering.basePort)"
                )
            }
        }
        guard (0..<port.queueCount).contains(queue) else {
            throw .configuration("queue \(queue) is not one of \(port.name)'s \(port.queueCount) queue(s)")
        }
        guard (1...512).contains(txBatch), (1...512).contains(rxBurst) else {
            throw .configuration("txBatch and rxBurst must be in 1...512")
        }
        var table = [UInt32: EthernetAddress]()
        for (ipv4, bytes) in neighbours {
            guard let mac = EthernetAddress(bytes: bytes) else {
                throw .configuration(
                    "neighbour \(PeerAddress(ipv4: ipv4, port: 0).ipv4Text): a MAC has 6 bytes, not \(bytes.count)")
            }
            table[ipv4] = mac
        }
        self.port = port
        self.queue = UInt16(queue)
        self.localAddress = localAddress
        self.neighbours = table
        self.txBatch = txBatch
        self.rxBurst = rxBurst
        self.steering = steering
        self.instance = instance
        rxMbufs = .allocate(capacity: rxBurst)
        rxMbufs.initialize(repeating: nil, count: rxBurst)
        txCapacity = max(txBatch, 32)
        txMbufs = .allocate(capacity: txCapacity)
        txMbufs.initialize(repeating: nil, count: txCapacity)
    }

    deinit {
        flushTX()
        rxMbufs.deallocate()
        txMbufs.deallocate()
    }

    /// Adds or replaces the MAC for `ipv4`. False (table unchanged) unless `mac` has 6 bytes.
    @discardableResult
    public func setNeighbour(_ ipv4: UInt32, mac: [UInt8]) -> Bool {
        guard let address = EthernetAddress(bytes: mac) else { return false }
        neighbours[ipv4] = address
        lastNeighbour = nil
        return true
    }

    /// The MAC to send to for `ipv4` (see `lastNeighbour`).
    @inline(__always)
    func destinationMAC(for ipv4: UInt32) -> EthernetAddress? {
        if let last = lastNeighbour, last.ipv4 == ipv4 { return last.mac }
        guard let mac = neighbours[ipv4] else { return nil }
        lastNeighbour = (ipv4, mac)
        return mac
    }

    /// The MAC frames to `ipv4` are sent to, if known.
    public func neighbour(_ ipv4: UInt32) -> EthernetAddress? { neighbours[ipv4] }

    public func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
        guard frame.count <= maxFrameSize else {
            counters.oversize &+= 1
            return false
        }
        guard let destinationMAC = destinationMAC(for: peer.ipv4) else {
            counters.unknownNeighbour &+= 1
            return false
        }
        guard let mbuf = cdpdk_pktmbuf_alloc(port.pool) else {
            counters.noMbuf &+= 1
            return false
        }
        let length = EthernetUDP.headerSize + frame.count  // ≤ 1514, within the 2048-byte data room
        guard cdpdk_mbuf_set_len(mbuf, UInt16(length)) == 0, let data = cdpdk_mbuf_data(mbuf) else {
            cdpdk_pktmbuf_free(mbuf)
            counters.noMbuf &+= 1
            return false
        }
        // `data` has `length` writable bytes: set_len checked them against the tailroom.
        writeHeaders(at: data, to: peer, mac: destinationMAC, payloadLength: frame.count)
        if let base = frame.baseAddress, !frame.isEmpty {
            (data + EthernetUDP.headerSize).copyMemory(from: base, byteCount: frame.count)
        }
        return queueForDevice(mbuf)
    }

    /// The Ethernet, IPv4 and UDP headers in front of a `payloadLength`-byte frame for `peer`.
    @inline(__always)
    func writeHeaders(at data: UnsafeMutableRawPointer, to peer: PeerAddress, mac: EthernetAddress, payloadLength: Int)
    {
        EthernetUDP.writeHeaders(
            to: data, sourceMAC: port.mac, destinationMAC: mac, source: localAddress, destination: peer,
            payloadLength: payloadLength, identification: identification)
        identification &+= 1
    }

    /// Queues a packet for the device: it goes in the next burst, which leaves
    /// once `txBatch` packets wait (between `hold()` and `flush()`, `txCapacity`).
    @inline(__always)
    func queueForDevice(_ mbuf: OpaquePointer) -> Bool {
        txMbufs[txPending] = mbuf
        txPending += 1
        guard txPending >= (holding ? txCapacity : txBatch) else { return true }
        return flushTX()
    }
}
#endif

#if DIOS_DPDK
import DIOSWire
#if canImport(Glibc)
import Glibc
#endif
import CDPDK
import CLinux
import Synchronization

// MARK: - Steering between a node's instances

/// The handoff between the transports of one node's instances on one port.
/// Each instance owns a queue pair, but the device picks the queue an arriving
/// packet lands on; the transport that finds a packet for a sibling (by UDP
/// port: instance k listens on `basePort + k`) hands its mbuf over through a
/// single-producer/single-consumer ring for that ordered pair, and the sibling
/// takes it at its next `receive`, before its own burst. Nothing is copied;
/// the sibling frees the mbuf. A full ring drops the packet (counted as
/// `siblingBusy`; the session above retransmits).
///
/// Once `arm(wakers:)` has run, `wakers[k]` is called after a packet is
/// handed to instance k (its kernel instance may be asleep: DPDK queues cannot
/// wake it); before, the sibling finds the packet at its next poll.
public final class DPDKSteering: @unchecked Sendable {  // each ring: one producer thread, one consumer thread
    public let basePort: UInt16
    public let instances: Int
    public var ports: ClosedRange<UInt16> { basePort...(basePort + UInt16(instances - 1)) }
    /// Written once by `arm`, before `armed` is set; read only after.
    private var wakers: [@Sendable () -> Void] = []
    private let armed = Atomic<Bool>(false)
    private let rings: [MbufRing]

    public init(basePort: UInt16, instances: Int, capacity: Int = 1024) throws(TransportError) {
        guard instances >= 1, Int(basePort) + instances <= 65_536 else {
            throw .configuration("\(instances) instance(s) from port \(basePort)")
        }
        self.basePort = basePort
        self.instances = instances
        rings = (0..<(instances * instances)).map { _ in MbufRing(capacity: capacity) }
    }

    deinit { drain() }

    /// Sets how to wake each instance (while they may already poll: they read
    /// the wakers only once `armed` says they are all in place). Once only.
    public func arm(wakers: [@Sendable () -> Void]) {
        precondition(
            wakers.count == instances && !armed.load(ordering: .acquiring), "arm once, with a waker per instance")
        self.wakers = wakers
        armed.store(true, ordering: .releasing)
    }

    /// Hands `mbuf` from instance `from` to instance `to`; false when that ring is full.
    func hand(_ mbuf: OpaquePointer, from: Int, to: Int) -> Bool {
        guard rings[from * instances + to].push(UInt64(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(mbuf)))))
        else {
            return false
        }
        if armed.load(ordering: .acquiring) { wakers[to]() }
        return true
    }

    /// The oldest mbuf handed from `from` to `to`, if any.
    func take(from: Int, to: Int) -> OpaquePointer? {
        guard let bits = rings[from * instances + to].pop() else { return nil }
        return OpaquePointer(bitPattern: UInt(bits))
    }

    /// Frees every mbuf still waiting (after the instances stopped, before the
    /// port closes).
    public func drain() {
        for ring in rings {
            while let bits = ring.pop() {
                var mbuf = OpaquePointer(bitPattern: UInt(bits))
                cdpdk_pktmbuf_free_bulk(&mbuf, 1)
            }
        }
    }
}

/// A single-producer/single-consumer ring of 64-bit words: the producer writes
/// a slot, then publishes `tail` with release order; the consumer reads `tail`
/// with acquire order, then the slot. Each side caches the other's index and
/// reads the shared one only when its copy says full or empty.
final class MbufRing: @unchecked Sendable {
    private let memory: UnsafeMutableRawPointer
    private let slots: UnsafeMutablePointer<UInt64>
    private let mask: UInt64
    // Lines: 0 tail + the producer's cached head, 64 head + the consumer's cached tail.
    private var tail: UnsafeMutablePointer<UInt64> { memory.assumingMemoryBound(to: UInt64.self) }
    private var cachedHead: UnsafeMutablePointer<UInt64> { (memory + 8).assumingMemoryBound(to: UInt64.self) }
    private var head: UnsafeMutablePointer<UInt64> { (memory + 64).assumingMemoryBound(to: UInt64.self) }
    private var cachedTail: UnsafeMutablePointer<UInt64> { (memory + 72).assumingMemoryBound(to: UInt64.self) }

    init(capacity: Int) {
        var size = 1
        while size < capacity { size <<= 1 }
        memory = .allocate(byteCount: 128, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = UInt64(size - 1)
    }

    deinit {
        memory.deallocate()
        slots.deallocate()
    }

    func push(_ value: UInt64) -> Bool {
        let t = tail.pointee
        if t &- cachedHead.pointee > mask {
            cachedHead.pointee = clinux_load_acquire_u64(head)
            if t &- cachedHead.pointee > mask { return false }
        }
        slots[Int(t & mask)] = value
        clinux_store_release_u64(tail, t &+ 1)
        return true
    }

    func pop() -> UInt64? {
        let h = head.pointee
        if h == cachedTail.pointee {
            cachedTail.pointee = clinux_load_acquire_u64(tail)
            if h == cachedTail.pointee { return nil }
        }
        let value = slots[Int(h & mask)]
        clinux_store_release_u64(head, h &+ 1)
        return value
    }
}
#endif

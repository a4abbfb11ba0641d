// Instructions per DIOS call, for `valgrind --tool=callgrind` (see callgrind.sh
// and the README): the counts are exact and repeatable where timings on a
// shared VM are not, so a change to the data path can be judged by them.
//
//   CallCost local N   N 64-byte messages through a stream on one core
//                      (beginWrite/endWrite, beginRead/endRead), then N more
//                      with a `select` before each read.
//   CallCost wire N    two nodes in this process, one instance each, their
//                      wires joined by an in-memory transport that lends frames
//                      as DPDK does; N round trips of a 64-byte message to an
//                      echo task on the other node. Every frame crosses the
//                      real session, endpoint and kernel code; only the device
//                      is replaced (its cost shows apart, under `MemoryPort`).
//   CallCost names N   the same two nodes; node 1 creates a blob, and node 0
//                      looks its name up N times (a weak lookup answered from
//                      node 0's replica, with the stand-in made once), then N
//                      times a name node 0 holds itself; each reference is
//                      dropped after (`delete` with `.referenceOnly`).
//
// Swift's async main parks the main thread in sigsuspend, which callgrind
// 3.19 does not survive; the work runs in a detached task and the main thread
// waits on a semaphore instead.

import DIOS
import DIOSWire
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 2, ["local", "wire", "names"].contains(arguments[0]), let count = Int(arguments[1]), count > 0
else {
    print("usage: CallCost local|wire|names N")
    exit(2)
}

let done = DispatchSemaphore(value: 0)
nonisolated(unsafe) var failure: (any Error)? = nil
Task.detached {
    do {
        switch arguments[0] {
        case "local": try await local(count)
        case "wire": try await wire(count)
        default: try await names(count)
        }
    } catch {
        failure = error
    }
    done.signal()
}
done.wait()
if let failure {
    print("CallCost: \(failure)")
    exit(1)
}
print("CallCost \(arguments[0]): \(count) done")

// MARK: - One core

func local(_ count: Int) async throws {
    let kernel = try StandaloneInstance(arenaSize: 64 << 20, label: "callcost")  // adopts this thread
    let task = kernel.attach()
    let (_, stream) = try task.create(.stream(messageSize: 64, depth: 64))
    for i in 0..<count {
        let w = try task.beginWrite(stream, size: 64)
        try w.store(UInt64(truncatingIfNeeded: i))
        let written = task.endWrite(w)
        let r = try task.beginRead(stream)
        let value = try r.load(as: UInt64.self)
        let read = task.endRead(r)
        guard written, read, value == UInt64(truncatingIfNeeded: i) else { throw CallCostError("message \(i) lost") }
    }
    let refs = [stream]
    for i in 0..<count {
        let w = try task.beginWrite(stream, size: 64)
        try w.store(UInt64(truncatingIfNeeded: i))
        _ = task.endWrite(w)
        let ready = try await task.select(refs)
        let r = try task.beginRead(ready)
        _ = task.endRead(r)
    }
}

// MARK: - Two nodes

let echoProgram = Name.wellKnown("callcost.echo")

/// The echo `dios bench ipc --remote` runs (that one lives in the `dios`
/// executable, which this package cannot import): copies each message of its
/// first stream onto its second; ends on an empty one.
@Sendable func echo(_ task: TaskContext) async throws {
    let refs = try task.delegated()
    let (ping, pong) = (refs[0], refs[1])
    let pings = [ping]
    while true {
        _ = try await task.select(pings)
        let r = try task.beginRead(ping)
        let n = r.count
        if n == 0 {
            _ = task.endRead(r)
            return
        }
        let w = try task.beginWrite(pong, size: n)
        w.withUnsafeMutableBytes { dst in r.withUnsafeBytes { dst.copyMemory(from: $0) } }
        _ = task.endWrite(w)
        _ = task.endRead(r)
    }
}

/// Two nodes of one instance each over `MemoryNetwork`, once they reach each other.
func twoNodes() async throws -> [Node] {
    let network = MemoryNetwork()
    let addresses = [PeerAddress("127.0.0.1", port: 47_701)!, PeerAddress("127.0.0.1", port: 47_702)!]
    let ids = [InstanceID(node: 0, core: 0), InstanceID(node: 1, core: 0)]
    var nodes: [Node] = []
    for k in 0..<2 {
        var configuration = NodeConfiguration()
        configuration.node = UInt16(k)
        configuration.arenaSize = 32 << 20
        configuration.idlePolicy = .adaptive  // valgrind runs one thread at a time
        configuration.logger.logLevel = .warning
        let endpoint = WireEndpoint(
            local: ids[k], transport: MemoryPort(network, addresses[k], peer: addresses[1 - k]),
            peers: [ids[1 - k]: addresses[1 - k]],
            configuration: SessionConfiguration(retransmitTimeout: .milliseconds(500)),
            now: monotonicNanoseconds(), seed: UInt64(k + 1))
        nodes.append(try Node(configuration, wires: [endpoint]))
    }
    var reachable = false
    for _ in 0..<1000 where !reachable {
        reachable = try await nodes[0].withTask { task in task.reachableInstances().contains(ids[1]) }
        if !reachable { try await Task.sleep(for: .milliseconds(10)) }
    }
    guard reachable else {
        for node in nodes { node.shutdown() }
        throw CallCostError("the other node never answered")
    }
    return nodes
}

func wire(_ count: Int) async throws {
    let nodes = try await twoNodes()
    defer { for node in nodes { node.shutdown() } }
    for node in nodes { await node.register(echoProgram, label: "echo", program: echo) }
    let node0 = nodes[0]
    let ids = [InstanceID(node: 0, core: 0), InstanceID(node: 1, core: 0)]
    try await node0.withTask { task in
        let (_, ping) = try task.create(.stream(messageSize: 64, depth: 8))
        let (_, pong) = try task.create(.stream(messageSize: 64, depth: 8))
        let pongWriteEnd = try task.restrict(pong, to: [.write, .copy])
        let echoTask = try task.run(try task.lookup(echoProgram)[0], arguments: [ping, pongWriteEnd], on: ids[1])
        let pongs = [pong]
        for i in 0..<count {
            while true {
                do throws(CallError) {
                    let w = try task.beginWrite(ping, size: 64)
                    try w.store(UInt64(i))
                    _ = task.endWrite(w)
                    break
                } catch .wouldBlock {
                    _ = try await task.select([ping], flags: .writable)
                }
            }
            _ = try await task.select(pongs)
            let r = try task.beginRead(pong)
            let echoed = try r.load(as: UInt64.self)
            _ = task.endRead(r)
            guard echoed == UInt64(i) else { throw CallCostError("round trip \(i) echoed \(echoed)") }
        }
        let stop = try task.beginWrite(ping, size: 0)
        _ = task.endWrite(stop)
        _ = try await task.select([echoTask])
    }
}

func names(_ count: Int) async throws {
    let nodes = try await twoNodes()
    defer { for node in nodes { node.shutdown() } }
    let remote = try await nodes[1].withTask { task in try task.create(.blob(size: 64)).name }
    var found = false
    for _ in 0..<1000 where !found {
        found = (try? await nodes[0].withTask { task in try task.lookup(remote).count }) == 1
        if !found { try await Task.sleep(for: .milliseconds(10)) }
    }
    guard found else { throw CallCostError("node 0 never saw node 1's name") }
    try await nodes[0].withTask { task in
        let own = try task.create(.blob(size: 64)).name
        var refs: [Ref] = []
        refs.reserveCapacity(4)
        for name in [remote, own] {
            for _ in 0..<count {
                _ = try task.lookup(name, into: &refs)
                for r in refs { try task.delete(r, flags: .referenceOnly) }
                refs.removeAll(keepingCapacity: true)
            }
        }
    }
}

/// Frames between the two nodes: a locked queue per destination port.
final class MemoryNetwork: Sendable {
    let queues = Mutex<[UInt16: [[UInt8]]]>([:])
}

/// One node's end of `MemoryNetwork`. It lends frames from a pool of its own,
/// as the DPDK transport lends mbufs, so the in-place send path runs; a frame
/// is copied onto the "wire" when sent, as a device would. Received frames
/// land in buffers of that pool too, and may be kept (`keepReceived`), so the
/// zero-copy receive path runs.
final class MemoryPort: FrameTransport, @unchecked Sendable {  // used by one instance's thread
    let network: MemoryNetwork
    let localAddress: PeerAddress
    let peer: PeerAddress
    let maxFrameSize = 1472
    var readinessFD: Int32? { nil }
    private var free: [UnsafeMutableRawPointer] = (0..<256).map { _ in .allocate(byteCount: 1472, alignment: 64) }

    init(_ network: MemoryNetwork, _ address: PeerAddress, peer: PeerAddress) {
        self.network = network
        localAddress = address
        self.peer = peer
    }

    func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
        let bytes = Array(frame)
        network.queues.withLock { $0[peer.port, default: []].append(bytes) }
        return true
    }

    private var handing: UnsafeMutableRawPointer? = nil
    private var kept = false

    func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
        let frames = network.queues.withLock { queues -> [[UInt8]] in
            defer { queues[localAddress.port] = [] }
            return queues[localAddress.port] ?? []
        }
        for frame in frames {
            guard let buffer = free.popLast() else { continue }  // none free: dropped, as by a NIC
            frame.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            (handing, kept) = (buffer, false)
            body(UnsafeRawBufferPointer(start: buffer, count: frame.count), peer)
            handing = nil
            if !kept { free.append(buffer) }
        }
        return frames.count
    }

    func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? {
        guard let buffer = handing, bytes >= buffer && bytes < buffer + maxFrameSize else { return nil }
        kept = true
        return OpaquePointer(buffer)
    }

    func releaseReceived(_ handle: OpaquePointer) { free.append(UnsafeMutableRawPointer(handle)) }

    func allocateFrame() -> TransportFrame? {
        guard let buffer = free.popLast() else { return nil }
        return TransportFrame(handle: OpaquePointer(buffer), bytes: buffer, capacity: maxFrameSize)
    }

    func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool {
        send(UnsafeRawBufferPointer(start: frame.bytes, count: length), to: peer)
    }

    func isIdle(_ frame: TransportFrame) -> Bool { true }
    func releaseFrame(_ frame: TransportFrame) { free.append(frame.bytes) }
    func peerLeaving(_ address: PeerAddress) {}
}

struct CallCostError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

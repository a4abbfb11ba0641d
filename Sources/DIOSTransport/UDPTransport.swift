import CLinux
public import DIOSWire

#if canImport(Glibc)
import Glibc
#endif

/// Why a transport could not start.
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed; `call` names it.
    case system(call: String, errno: Int32)
    /// A DPDK call failed.
    case dpdk(call: String, message: String)
    /// The configuration cannot work (an address, a device name).
    case configuration(String)

    public var description: String {
        switch self {
        case .system(let call, let e): "\(call): \(String(cString: strerror(e)))"
        case .dpdk(let call, let message): "\(call): \(message)"
        case .configuration(let s): s
        }
    }
}

/// The DIOS wire through a Linux UDP socket: for machines without DPDK, for
/// mixed clusters (a DPDK node and a socket node speak the same frames), and as
/// the baseline the kernel-bypass transports are measured against.
///
/// The socket is non-blocking; `receive` takes a burst with one `recvmmsg`,
/// and frames sent between `hold()` and `flush()` leave with one `sendmmsg`.
public final class UDPTransport: FrameTransport {
    public let localAddress: PeerAddress
    public let maxFrameSize = 1472
    private let fd: Int32
    private let burst = 32
    private let slotSize = 2048
    private let buffers: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int32>
    private let addresses: UnsafeMutablePointer<UInt32>
    private let ports: UnsafeMutablePointer<UInt16>
    // Frames kept between hold() and flush(), sent as one burst.
    private let txBuffers: UnsafeMutableRawPointer
    private let txLengths: UnsafeMutablePointer<Int32>
    private let txAddresses: UnsafeMutablePointer<UInt32>
    private let txPorts: UnsafeMutablePointer<UInt16>
    @exclusivity(unchecked) private var txCount = 0
    @exclusivity(unchecked) private var holding = false

    @exclusivity(unchecked) public private(set) var sendFailures: UInt64 = 0

    /// Binds a socket to `address` (port 0 picks a free port; `localAddress`
    /// then holds the one bound).
    public init(bind address: PeerAddress) throws(TransportError) {
        let fd = socket(
            AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(call: "socket", errno: errno) }
        var size: Int32 = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var sa = Self.socketAddress(address)
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw .system(call: "bind \(address)", errno: e)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        localAddress = PeerAddress(ipv4: address.ipv4, port: UInt16(bigEndian: actual.sin_port))
        buffers = .allocate(byteCount: burst * slotSize, alignment: 64)
        lengths = .allocate(capacity: burst)
        addresses = .allocate(capacity: burst)
        ports = .allocate(capacity: burst)
        txBuffers = .allocate(byteCount: burst * slotSize, alignment: 64)
        txLengths = .allocate(capacity: burst)
        txAddresses = .allocate(capacity: burst)
        txPorts = .allocate(capacity: burst)
    }

    deinit {
        close(fd)
        buffers.deallocate()
        lengths.deallocate()
        addresses.deallocate()
        ports.deallocate()
        txBuffers.deallocate()
        txLengths.deallocate()
        txAddresses.deallocate()
        txPorts.deallocate()
    }

    public var readinessFD: Int32? { fd }

    public func send(_ frame: UnsafeRawBufferPointer, to peer: PeerAddress) -> Bool {
        if holding && frame.count <= slotSize {
            if txCount == burst { sendKept() }
            (txBuffers + txCount * slotSize).copyMemory(from: frame.baseAddress!, byteCount: frame.count)
            txLengths[txCount] = Int32(frame.count)
            txAddresses[txCount] = peer.ipv4
            txPorts[txCount] = peer.port
            txCount += 1
            return true
        }
        var sa = Self.socketAddress(peer)
        let n = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, frame.baseAddress, frame.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if n != frame.count {
            sendFailures &+= 1
            return false
        }
        return true
    }

    public func hold() { holding = true }

    public func flush() {
        holding = false
        if txCount > 0 { sendKept() }
    }

    /// Sends the kept frames with one `sendmmsg`; those the socket refuses are
    /// dropped, as on a wire (the sessions retransmit).
    private func sendKept() {
        let sent = Int(clinux_udp_send_burst(fd, txBuffers, slotSize, Int32(txCount), txLengths, txAddresses, txPorts))
        sendFailures &+= UInt64(txCount - max(sent, 0))
        txCount = 0
    }

    public func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
        let n = Int(clinux_udp_receive_burst(fd, buffers, slotSize, Int32(burst), lengths, addresses, ports))
        guard n > 0 else { return 0 }
        for i in 0..<n where lengths[i] >= 0 {  // a truncated datagram is not a frame we sent
            body(
                UnsafeRawBufferPointer(start: buffers + i * slotSize, count: Int(lengths[i])),
                PeerAddress(ipv4: addresses[i], port: ports[i]))
        }
        return n
    }

    static func socketAddress(_ a: PeerAddress) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = a.port.bigEndian
        sa.sin_addr.s_addr = a.ipv4.bigEndian
        return sa
    }
}

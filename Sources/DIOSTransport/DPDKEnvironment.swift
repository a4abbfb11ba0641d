#if DIOS_DPDK
import DIOSWire
#if canImport(Glibc)
import Glibc
#endif
import CDPDK
import CLinux
import Synchronization

// MARK: - The EAL

/// Where the process's one Environment Abstraction Layer stands. DPDK allows
/// `rte_eal_init` once per process, and nothing after `rte_eal_cleanup`.
private enum EALState {
    case idle
    case running(DPDKEnvironment)
    case failed(TransportError)
    case cleanedUp
}

private let ealState = Mutex<EALState>(.idle)
/// Whether `ealState` is `.running`, for readers on the data path (releasing a
/// frame checks it): a word every core may read without taking the lock.
private let ealRunning = Atomic<Bool>(false)

/// The DPDK Environment Abstraction Layer of this process: hugepage memory, the
/// lcores, and the Ethernet devices (`--vdev` virtual ones; PCI NICs unless
/// `--no-pci`). One per process, started once from an argument array:
///
///     let eal = try DPDKEnvironment.start(arguments: [
///         "dios", "--file-prefix", "node0", "--no-pci", "--huge-unlink",
///         "--vdev", "net_memif0,role=server,socket=/tmp/node0.sock", "-l", "0",
///     ])
///
/// Notes from Debian's DPDK 22.11: memif needs the EAL's multi-process channel,
/// so neither `--in-memory` nor `--no-shconf` works with it; `--huge-unlink`
/// leaves no hugepage files behind even after a crash; `--file-prefix` keeps
/// several processes apart; the runtime directory (`/var/run/dpdk/PREFIX`)
/// is removed by `cleanup()`, and after a crash stays for the caller to remove;
/// the memory is released when the process exits (see `cleanup()` for why not before);
/// memif's socket is abstract (no file) unless `socket-abstract=no`.
public final class DPDKEnvironment: Sendable {
    /// The arguments the EAL was started with.
    public let arguments: [String]

    private init(arguments: [String]) { self.arguments = arguments }

    /// Starts the EAL with `arguments` (the first is the program name, as argv[0]).
    /// Returns the running environment when called again with the same arguments.
    ///
    /// - Throws: `TransportError.dpdk` naming `rte_eal_init` with `rte_strerror`'s
    ///   message when the EAL does not start (no hugepages, a bad argument, not
    ///   root, an unknown `--vdev` driver); `.configuration` when it was started
    ///   with other arguments, or has been cleaned up.
    public static func start(arguments: [String]) throws(TransportError) -> DPDKEnvironment {
        let result: Result<DPDKEnvironment, TransportError> = ealState.withLock { state in
            switch state {
            case .running(let existing):
                guard existing.arguments == arguments else {
                    return .failure(
                        .configuration(
                            "the DPDK EAL is already running with \(existing.arguments); one EAL per process"))
                }
                return .success(existing)
            case .failed(let error):
                return .failure(error)  // rte_eal_init may not be retried
            case .cleanedUp:
                return .failure(.configuration("the DPDK EAL was cleaned up; it cannot start again in this process"))
            case .idle:
                guard !arguments.isEmpty else { return .failure(.configuration("EAL arguments need argv[0]")) }
                // The EAL permutes argv and may keep pointers into it (vdev
                // arguments, the file prefix), so these C strings live for the
                // rest of the process: a few hundred bytes, once.
                let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
                for (i, argument) in arguments.enumerated() { argv[i] = strdup(argument) }
                argv[arguments.count] = nil
                var error: Int32 = 0
                let parsed = cdpdk_eal_init(Int32(arguments.count), argv, &error)
                guard parsed >= 0 else {
                    let failure = TransportError.dpdk(
                        call: "rte_eal_init",
                        message: "\(Self.message(error)) (rte_errno \(error)); arguments: \(arguments)")
                    state = .failed(failure)
                    return .failure(failure)
                }
                let environment = DPDKEnvironment(arguments: arguments)
                state = .running(environment)
                ealRunning.store(true, ordering: .releasing)
                return .success(environment)
            }
        }
        return try result.get()
    }

    /// True from a successful `start` until `cleanup`.
    public var isRunning: Bool { ealRunning.load(ordering: .acquiring) }

    /// Ends this process's use of the EAL: from now on `isRunning` is false,
    /// so nothing frees mbufs or pools into it, and unless
    /// `keepRuntimeDirectory` its runtime directory (`/var/run/dpdk/PREFIX`,
    /// which DPDK leaves for secondary processes DIOS does not use) is
    /// removed. Idempotent. The EAL cannot start again in this process.
    ///
    /// It does not call `rte_eal_cleanup`: the memory stays mapped until the
    /// process exits, which releases it (`--huge-unlink` left no hugepage
    /// files to remove). DPDK 22.11's `rte_eal_cleanup` frees that memory
    /// while its interrupt thread may still read it: after a port's close
    /// (memif unregisters its sockets' callbacks) the thread rebuilds its wait
    /// set from interrupt handles in that memory, so a process that stopped
    /// cleanly could then crash in `rte_intr_fd_get` on `eal-intr-thread`
    /// (later DPDK stops the thread first).
    ///
    /// - Important: close every `DPDKPort` first (memif removes its socket
    ///   then); ports left open are not closed here.
    public func cleanup(keepRuntimeDirectory: Bool = false) {
        ealState.withLock { state in
            guard case .running = state else { return }
            let runtimeDirectory = cdpdk_runtime_dir().map { String(cString: $0) } ?? ""
            ealRunning.store(false, ordering: .releasing)
            state = .cleanedUp
            if !keepRuntimeDirectory && runtimeDirectory.hasPrefix("/") { Self.removeFlatDirectory(runtimeDirectory) }
        }
    }

    /// Unlinks the entries of `path` (the EAL's runtime directory holds only
    /// files and a socket, no subdirectories) and then the directory itself.
    private static func removeFlatDirectory(_ path: String) {
        guard let directory = opendir(path) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { _ = unlink(path + "/" + name) }
        }
        closedir(directory)
        _ = rmdir(path)
    }

    /// Gives the calling thread a DPDK lcore id, so the mbufs its transport
    /// allocates and frees go through a per-lcore mempool cache rather than the
    /// pool's shared ring. Call it on each kernel-instance thread that polls a
    /// `DPDKTransport` (the EAL's main thread has one already). Idempotent.
    ///
    /// - Throws: `TransportError.dpdk` naming `rte_thread_register` when no lcore
    ///   id is free (RTE_MAX_LCORE), or the EAL is not running.
    public func registerCurrentThread() throws(TransportError) {
        guard isRunning else { throw .configuration("the DPDK EAL is not running") }
        guard cdpdk_lcore_id() == UInt32.max else { return }
        var error: Int32 = 0
        guard cdpdk_thread_register(&error) == 0 else {
            throw .dpdk(call: "rte_thread_register", message: "\(Self.message(error)) (rte_errno \(error))")
        }
    }

    /// The calling thread's lcore id; nil for a thread the EAL does not know.
    public var currentThreadLcore: Int? {
        let id = cdpdk_lcore_id()
        return id == UInt32.max ? nil : Int(id)
    }

    /// Releases the lcore id `registerCurrentThread` gave the calling thread.
    public func unregisterCurrentThread() {
        if isRunning { cdpdk_thread_unregister() }
    }

    /// How many Ethernet ports the EAL found.
    public var portCount: Int { Int(cdpdk_eth_dev_count_avail()) }

    /// The port id of the device `name` ("net_memif0", "net_af_packet0").
    public func portID(named name: String) throws(TransportError) -> UInt16 {
        var id: UInt16 = 0
        let r = name.withCString { cdpdk_port_by_name($0, &id) }
        guard r == 0 else {
            throw .configuration("no DPDK port named \(name) (ports: \(portNames().joined(separator: ", ")))")
        }
        return id
    }

    /// The names of the ports, by port id.
    public func portNames() -> [String] {
        var names = [String]()
        var buffer = [CChar](repeating: 0, count: 64)
        var next = cdpdk_port_next(0)
        while next >= 0, let id = UInt16(exactly: next) {
            if cdpdk_port_name(id, &buffer, UInt32(buffer.count)) == 0 {
                names.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            guard id < UInt16.max else { break }
            next = cdpdk_port_next(id + 1)
        }
        return names
    }

    /// `rte_strerror`'s text for a DPDK error number (positive or negative).
    static func message(_ error: Int32) -> String {
        String(cString: cdpdk_strerror(error < 0 ? -error : error))
    }
}
#endif

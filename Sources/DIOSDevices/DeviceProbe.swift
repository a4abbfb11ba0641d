import CLinux

#if canImport(Glibc)
import Glibc
#endif
#if DIOS_DPDK
import CDPDK
#endif
#if DIOS_RDMA
import CRDMA
#endif

/// What a node found at start-up for one way of reaching the network or memory.
public struct ProbeResult: Sendable, Equatable, CustomStringConvertible {
    public enum State: String, Sendable { case available, unavailable, notBuilt = "not built" }
    public var facility: String
    public var state: State
    /// What was found, or why it cannot be used, in words a user can act on.
    public var detail: String

    public var description: String { "\(facility): \(state.rawValue) — \(detail)" }
}

/// Why RDMA cannot be used.
public enum RDMAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `ibv_get_device_list` failed: the kernel has no InfiniBand/RDMA support
    /// (ENOSYS), or the verbs library could not read sysfs.
    case deviceListFailed(errno: Int32)
    /// The kernel supports RDMA but no device (RDMA NIC, or soft-RoCE `rxe`) exists.
    case noDevices
    /// The package was built with the RDMA trait off.
    case notBuilt

    public var description: String {
        switch self {
        case .deviceListFailed(let e) where e == ENOSYS:
            "ibv_get_device_list: \(String(cString: strerror(e))) — this kernel has no InfiniBand/RDMA support "
                + "(no ib_uverbs); load it, or use a machine with an RDMA NIC or soft-RoCE (rdma link add rxe0 type "
                + "rxe netdev IF)"
        case .deviceListFailed(let e):
            "ibv_get_device_list: \(String(cString: strerror(e)))"
        case .noDevices:
            "no RDMA device: add an RDMA NIC or soft-RoCE (rdma link add rxe0 type rxe netdev IF)"
        case .notBuilt:
            "built without the RDMA trait (libibverbs-dev, librdmacm-dev)"
        }
    }
}

/// Start-up checks for the facilities DIOS can use: DPDK, RDMA verbs, hugepages.
public enum DeviceProbe {
    /// The linked DPDK library, if the package was built with the DPDK trait.
    /// Initialising the EAL is left to the DPDK transport.
    public static func dpdk() -> ProbeResult {
        #if DIOS_DPDK
        let version = String(cString: cdpdk_version())
        return ProbeResult(facility: "DPDK", state: .available, detail: "\(version) linked; PMDs load at EAL start")
        #else
        return ProbeResult(facility: "DPDK", state: .notBuilt, detail: "built without the DPDK trait (libdpdk-dev)")
        #endif
    }

    /// The names of the RDMA devices the verbs library sees.
    /// The corresponding verbs function is `ibv_get_device_list`.
    public static func rdmaDevices() throws(RDMAError) -> [String] {
        #if DIOS_RDMA
        var list: UnsafeMutablePointer<OpaquePointer?>? = nil
        let n = crdma_device_list(&list)
        defer { crdma_free_device_list(list) }
        guard n >= 0 else { throw .deviceListFailed(errno: -n) }
        guard n > 0, let list else { throw .noDevices }
        return (0..<Int(n)).compactMap { i in list[i].map { String(cString: crdma_device_name($0)) } }
        #else
        throw .notBuilt
        #endif
    }

    /// RDMA as a probe result: the devices, or the reason there are none.
    public static func rdma() -> ProbeResult {
        do {
            let devices = try rdmaDevices()
            return ProbeResult(facility: "RDMA", state: .available, detail: devices.joined(separator: ", "))
        } catch .notBuilt {
            return ProbeResult(facility: "RDMA", state: .notBuilt, detail: RDMAError.notBuilt.description)
        } catch {
            return ProbeResult(facility: "RDMA", state: .unavailable, detail: error.description)
        }
    }

    /// Hugepages: reserved, free, and the hugetlbfs mount.
    public static func hugepages() -> ProbeResult {
        let meminfo = readFile("/proc/meminfo") ?? ""
        func field(_ name: String) -> Int? {
            meminfo.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
        }
        let total = field("HugePages_Total") ?? 0
        let free = field("HugePages_Free") ?? 0
        var mount: String? = nil
        for line in (readFile("/proc/mounts") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2 && fields[2] == "hugetlbfs" {
                mount = String(fields[1])
                break
            }
        }
        guard total > 0, let mount else {
            return ProbeResult(
                facility: "hugepages", state: .unavailable,
                detail: "\(total) reserved, hugetlbfs \(mount ?? "not mounted") — run ./hugepages.sh")
        }
        return ProbeResult(
            facility: "hugepages", state: .available, detail: "\(free)/\(total) free, hugetlbfs at \(mount)")
    }

    /// Every probe, in start-up order.
    public static func all() -> [ProbeResult] { [hugepages(), dpdk(), rdma()] }

    static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

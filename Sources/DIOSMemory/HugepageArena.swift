import CLinux
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

private let arenaSequence = Atomic<Int>(0)

/// How an arena's memory is backed.
public enum ArenaBacking: Sendable, Equatable, CustomStringConvertible {
    /// A file on a hugetlbfs mount, mapped with 2 MiB pages.
    case hugepages(path: String)
    /// Ordinary 4 KiB anonymous pages, because hugepages were not available (the reason).
    case ordinaryPages(reason: String)

    public var description: String {
        switch self {
        case .hugepages(let path): "hugepages (\(path))"
        case .ordinaryPages(let reason): "ordinary pages (\(reason))"
        }
    }
}

/// One contiguous mapping of memory that the node's pools, stream rings and (later)
/// DPDK mempools are carved from, so a buffer a task writes is the buffer the NIC sends.
///
/// This is the one owner of the raw mapping: unmapped exactly once, in `deinit`,
/// when the last pool holding the arena lets go, and its hugetlbfs file removed
/// then. Its fields never change after `init`, which is why it may be shared
/// between instances; what each instance does with its own region is up to it.
public final class HugepageArena: @unchecked Sendable {
    /// 2 MiB, the hugepage size this arena asks for.
    public static let hugepageSize = 2 << 20

    public let base: UnsafeMutableRawPointer
    public let size: Int
    public let backing: ArenaBacking
    /// The file the arena maps (close-on-exec): a trusted task process maps
    /// the same memory from it, so the offsets the kernel hands out name the
    /// same bytes on both sides.
    public let descriptor: Int32

    /// Maps `size` bytes (rounded up to whole hugepages). Tries a file on a
    /// hugetlbfs mount first; without one (or without free hugepages) it maps
    /// ordinary pages and logs one warning saying why.
    ///
    /// - Parameters:
    ///   - label: part of the hugetlbfs file name, `dios-<pid>-<sequence>-<label>`.
    ///   - hugetlbfs: the mount to use; by default the first 2 MiB hugetlbfs mount
    ///     in /proc/mounts. An empty string asks for ordinary pages.
    public init(
        size requested: Int, label: String, hugetlbfs: String? = nil,
        logger: Logger = Logger(label: "dios.memory")
    ) throws(ArenaError) {
        guard requested > 0 else { throw .invalidSize(requested) }
        let size = (requested + Self.hugepageSize - 1) / Self.hugepageSize * Self.hugepageSize
        switch Self.mapHugepages(size: size, label: label, mount: hugetlbfs ?? Self.hugetlbfsMount()) {
        case .success(let (base, path, fd)):
            self.base = base
            self.size = size
            self.backing = .hugepages(path: path)
            self.descriptor = fd
        case .failure(let why):
            // A memfd rather than anonymous memory: it can be shared the same way.
            let fd = clinux_memfd("dios-arena-\(label)", size)
            guard fd >= 0 else { throw .mapFailed(errno: errno) }
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, clinux_map_shared(), fd, 0)
            guard let p, p != clinux_map_failed() else {
                let e = errno
                close(fd)
                throw .mapFailed(errno: e)
            }
            logger.warning(
                "hugepages unavailable, falling back to ordinary pages",
                metadata: ["reason": "\(why.reason)", "size": "\(size)", "hint": "run ./hugepages.sh"])
            self.base = p
            self.size = size
            self.backing = .ordinaryPages(reason: why.reason)
            self.descriptor = fd
        }
    }

    deinit {
        munmap(base, size)
        close(descriptor)
        if case .hugepages(let path) = backing { unlink(path) }
    }

    /// The address `offset` bytes into the arena. Offsets are what pools and rings
    /// store; addresses are derived here so that bounds are checked in one place.
    @inlinable
    public func address(at offset: Int) -> UnsafeMutableRawPointer {
        precondition(offset >= 0 && offset <= size, "arena offset out of range")
        return base + offset
    }

    /// Whether `pointer` lies inside the arena.
    public func contains(_ pointer: UnsafeRawPointer) -> Bool {
        let p = UInt(bitPattern: pointer)
        let b = UInt(bitPattern: base)
        return p >= b && p < b + UInt(size)
    }

    struct MapFailure: Error { var reason: String }

    private static func mapHugepages(
        size: Int, label: String, mount: String?
    ) -> Result<(UnsafeMutableRawPointer, String, Int32), MapFailure> {
        guard let mount, !mount.isEmpty else { return .failure(MapFailure(reason: "no hugetlbfs mount")) }
        // Whatever made an arena and died without unmapping it (a node killed
        // with SIGKILL, a benchmark or test process that exited holding one)
        // left its file, and its hugepages, behind: every new arena sweeps them
        // up first, so they never pile up across processes.
        removeStaleFiles(in: mount)
        // pid, then a per-process sequence number: two arenas of one process never collide.
        let path = "\(mount)/dios-\(getpid())-\(arenaSequence.add(1, ordering: .relaxed).newValue)-\(label)"
        let fd = open(path, O_CREAT | O_RDWR | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return .failure(MapFailure(reason: "open \(path): \(String(cString: strerror(errno)))")) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let e = errno
            close(fd)
            unlink(path)
            return .failure(MapFailure(reason: "ftruncate \(path): \(String(cString: strerror(e)))"))
        }
        // MAP_POPULATE faults every page in now, so a shortage of hugepages shows
        // here as a failed mmap rather than as SIGBUS later inside the data path.
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, clinux_map_shared() | clinux_map_populate(), fd, 0)
        guard let p, p != clinux_map_failed() else {
            let e = errno
            close(fd)
            unlink(path)
            return .failure(MapFailure(reason: "mmap \(size) bytes of hugepages: \(String(cString: strerror(e)))"))
        }
        return .success((p, path, fd))
    }

    /// The first hugetlbfs mount with the default (2 MiB) page size, from /proc/mounts.
    public static func hugetlbfsMount() -> String? {
        guard let f = fopen("/proc/mounts", "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0, let line {
            let fields = String(cString: line).split(separator: " ")
            guard fields.count >= 4, fields[2] == "hugetlbfs" else { continue }
            let options = fields[3].split(separator: ",")
            if options.contains(where: { $0.hasPrefix("pagesize=") && $0 != "pagesize=2M" }) { continue }
            return String(fields[1])
        }
        return nil
    }

    /// Removes hugetlbfs files left by DIOS processes that no longer exist
    /// (a node killed with SIGKILL cannot unlink its own) from `mount` (by
    /// default the first 2 MiB hugetlbfs mount). A file whose process still
    /// exists stays. Every new arena does this first. Returns the paths removed.
    @discardableResult
    public static func removeStaleFiles(in mount: String? = nil) -> [String] {
        guard let mount = mount ?? hugetlbfsMount(), let dir = opendir(mount) else { return [] }
        defer { closedir(dir) }
        var removed: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            let parts = name.split(separator: "-", maxSplits: 2)
            guard parts.count >= 2, parts[0] == "dios", let pid = Int32(parts[1]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                let path = "\(mount)/\(name)"
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }
}

/// Why an arena could not be mapped.
public enum ArenaError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidSize(Int)
    case mapFailed(errno: Int32)

    public var description: String {
        switch self {
        case .invalidSize(let n): "arena size must be positive, got \(n)"
        case .mapFailed(let e): "mmap failed: \(String(cString: strerror(e)))"
        }
    }
}

import DIOSMemory
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ArenaTests {
    @Test func usesHugepagesWhenMounted() throws {
        guard let mount = HugepageArena.hugetlbfsMount() else {
            Issue.record("no hugetlbfs mount: run ./hugepages.sh first (CI does)")
            return
        }
        let path: String
        do {
            let arena = try HugepageArena(size: 3 << 20, label: "arenatest")
            #expect(arena.size == 4 << 20)  // whole hugepages
            guard case .hugepages(let p) = arena.backing else {
                Issue.record("expected hugepages, got \(arena.backing)")
                return
            }
            path = p
            #expect(path.hasPrefix(mount + "/dios-\(getpid())-"))
            #expect(access(path, F_OK) == 0)
            // Writable end to end.
            arena.base.storeBytes(of: 0xFEED, as: UInt32.self)
            arena.address(at: arena.size - 4).storeBytes(of: 0xBEEF, as: UInt32.self)
            #expect(arena.base.load(as: UInt32.self) == 0xFEED)
        }
        // Released with the arena: no hugepage file left behind.
        #expect(access(path, F_OK) != 0)
    }

    /// A process that dies holding an arena (SIGKILL, or an exit with the
    /// arena still mapped) cannot remove its file: the next arena made by any
    /// DIOS process removes it, and leaves the files of processes still alive.
    @Test func aNewArenaRemovesTheFilesOfDeadProcessesOnly() throws {
        guard let mount = HugepageArena.hugetlbfsMount() else {
            Issue.record("no hugetlbfs mount: run ./hugepages.sh first (CI does)")
            return
        }
        // No process has a pid above pid_max.
        let pidMax =
            (try? String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 4_194_304
        let dead = "\(mount)/dios-\(pidMax + 1)-1-deadtest"
        let live = "\(mount)/dios-\(getpid())-999999-livetest"
        for path in [dead, live] {
            let fd = open(path, O_CREAT | O_RDWR, 0o600)  // empty: no hugepages used
            #expect(fd >= 0)
            close(fd)
        }
        defer { unlink(live) }
        #expect(access(dead, F_OK) == 0)
        let arena = try HugepageArena(size: 2 << 20, label: "sweeptest")
        #expect(access(dead, F_OK) != 0)  // its process is gone
        #expect(access(live, F_OK) == 0)  // ours is not
        guard case .hugepages = arena.backing else {
            Issue.record("expected hugepages, got \(arena.backing)")
            return
        }
    }

    @Test func fallsBackToOrdinaryPagesWithAReason() throws {
        let arena = try HugepageArena(size: 1 << 20, label: "fallback", hugetlbfs: "/nonexistent-mount")
        guard case .ordinaryPages(let reason) = arena.backing else {
            Issue.record("expected ordinary pages")
            return
        }
        #expect(reason.contains("/nonexistent-mount"))
        arena.base.storeBytes(of: 1, as: UInt8.self)
        #expect(arena.contains(arena.base))
        #expect(!arena.contains(arena.base + arena.size))
    }

    @Test func rejectsNonPositiveSizes() {
        #expect(throws: ArenaError.invalidSize(0)) { try HugepageArena(size: 0, label: "zero") }
    }
}

@Suite struct BufferPoolTests {
    let arena: HugepageArena
    init() throws { arena = try HugepageArena(size: 8 << 20, label: "pooltest", hugetlbfs: "") }

    @Test func sizeClasses() {
        #expect(BufferPool.sizeClass(for: 0) == 0)
        #expect(BufferPool.sizeClass(for: 64) == 0)
        #expect(BufferPool.sizeClass(for: 65) == 1)
        #expect(BufferPool.sizeClass(for: 4096) == 6)
        #expect(BufferPool.sizeClass(for: 2 << 20) == 15)
        #expect(BufferPool.sizeClass(for: (2 << 20) + 1) == nil)
    }

    @Test func buffersAreAlignedDisjointAndInsideTheRegion() throws {
        var pool = BufferPool(arena: arena, offset: 4096, length: 1 << 20)
        var taken: [ArenaBuffer] = []
        for size in [1, 64, 100, 500, 4096, 10_000, 64, 3] {
            let allocated = pool.allocate(size)
            let b = try #require(allocated)
            #expect(b.capacity >= size)
            #expect(b.offset % min(b.capacity, HugepageArena.hugepageSize) == 0)
            #expect(b.offset >= 4096 && b.offset + b.capacity <= 4096 + (1 << 20))
            taken.append(b)
        }
        for (i, a) in taken.enumerated() {
            for b in taken[(i + 1)...] {
                #expect(a.offset + a.capacity <= b.offset || b.offset + b.capacity <= a.offset)
            }
        }
        #expect(pool.buffersInUse == taken.count)
    }

    @Test func freedBuffersAreReusedAndExhaustionIsReported() throws {
        var pool = BufferPool(arena: arena, offset: 0, length: 4096)
        var all: [ArenaBuffer] = []
        while let b = pool.allocate(1024) { all.append(b) }
        #expect(all.count == 4)
        let none = pool.allocate(1024)
        #expect(none == nil)
        pool.free(all[2])
        let reused = pool.allocate(1000)
        #expect(reused == all[2])
        #expect(pool.bytesInUse == 4096)
    }
}

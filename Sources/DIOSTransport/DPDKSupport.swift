#if DIOS_DPDK
import CDPDK
#endif

/// Whether this build can use DPDK: true when the package was built with the
/// `DPDK` trait (the default), so `DPDKEnvironment`, `DPDKPort` and `DPDKTransport` exist.
public enum DPDKSupport {
    public static var isBuilt: Bool {
        #if DIOS_DPDK
        true
        #else
        false
        #endif
    }

    /// Whether every unmapping in this process first waits for the DPDK bursts
    /// under way: the shim's `munmap` stands in for libc's (CSupport/CDPDK/cdpdk.c).
    /// It keeps a memif link that its peer's death tears down (on the EAL's
    /// interrupt thread) from unmapping a ring under a burst. False without
    /// DPDK, and in sanitizer builds, whose runtime must see each munmap.
    public static var munmapWaitsForBursts: Bool {
        #if DIOS_DPDK
        cdpdk_munmap_is_guarded() == 1
        #else
        false
        #endif
    }

    #if DIOS_DPDK
    /// For tests of that guard: runs `body` with the calling thread marked as
    /// inside a burst, as the transports' bursts are while DPDK runs.
    package static func markedAsInBurst<T>(_ body: () throws -> T) rethrows -> T {
        cdpdk_burst_hold_begin()
        defer { cdpdk_burst_hold_end() }
        return try body()
    }
    #endif
}

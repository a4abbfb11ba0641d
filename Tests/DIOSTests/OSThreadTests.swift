import CLinux
import Testing

@testable import DIOSKernel

#if canImport(Glibc)
import Glibc
#endif

/// `OSThread.start`: the threads the polling loops, the control server and
/// diosd's signal wait run on.
@Suite struct OSThreadTests {
    /// Written by the started thread, read after joining it.
    final class Seen: @unchecked Sendable {
        var cpu: Int32 = -2
        var onCallersThread = true
    }

    /// On CPU 1, then 0, then 1, then 0 (0 alone on a one-CPU machine): an
    /// unpinned thread would land on the asked one each time only by chance.
    @Test func runsTheBodyOnAThreadOfItsOwnPinnedWhereAsked() throws {
        let cpus: [Int32] = sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2 ? [1, 0, 1, 0] : [0]
        let caller = pthread_self()
        for cpu in cpus {
            let seen = Seen()
            let thread = try OSThread.start(pinnedTo: Int(cpu)) {
                seen.cpu = clinux_current_cpu()
                seen.onCallersThread = pthread_equal(pthread_self(), caller) != 0
            }
            #expect(pthread_join(thread, nil) == 0)
            #expect(seen.cpu == cpu)
            #expect(!seen.onCallersThread)
        }
    }

    final class Token: Sendable {}

    /// The box that carries the closure across is taken back by the thread:
    /// what the closure holds is released once the thread ends.
    @Test func releasesTheClosureWhenTheThreadEnds() throws {
        weak var released: Token?
        do {
            let token = Token()
            released = token
            let thread = try OSThread.start { withExtendedLifetime(token) {} }
            #expect(pthread_join(thread, nil) == 0)
        }
        #expect(released == nil)
    }

    @Test func aThreadThatDoesNotStartSaysWhy() {
        let error = OSThread.StartError(code: EAGAIN)
        #expect(error.description == "pthread_create: \(String(cString: strerror(EAGAIN))) (\(EAGAIN))")
    }
}

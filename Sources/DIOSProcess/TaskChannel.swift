import CDIOSChannel
import CLinux
import DIOSChannel
import DIOSKernel
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why a channel could not be made or went bad.
public enum ChannelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed making it (the call, errno).
    case system(String, Int32)
    /// The process broke the ring protocol (indices moved backwards or past
    /// the ring): the task is ended.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .system(let call, let e): "\(call): \(String(cString: strerror(e)))"
        case .protocolViolation(let why): "the task process broke its channel's protocol: \(why)"
        }
    }
}

/// The kernel's side of one task process's channel: the shared memory (a
/// memfd, mapped here and in the process), the indices the kernel owns (kept
/// here, published there, never read back), and the process's doorbell.
///
/// Confined to its instance's thread, like the instance, except `ended`, which
/// the process's watcher sets.
final class TaskChannel: ServicedChannel, @unchecked Sendable {
    let memory: Int32
    let base: UnsafeMutableRawPointer
    /// The doorbell: the process writes to `bellWrite` (its descriptor 4), the
    /// instance's sleep wakes on `bellRead`.
    let bellRead: Int32
    let bellWrite: Int32
    private var submissionHead: UInt32 = 0
    private var completionTail: UInt32 = 0
    /// A completion that found the ring full, sent before anything else.
    private(set) var held: CompletionEntry? = nil
    let ended = Atomic<Bool>(false)
    /// Called on pause and resume (the server stops and continues the process).
    var onPause: ((Bool) -> Void)? = nil
    /// The process may run on its instance's CPU (the server keeps it current).
    var sharesCPU = false

    init(trusted: Bool) throws(ChannelError) {
        let fd = cdios_memfd("dios-channel", ChannelLayout.size)
        guard fd >= 0 else { throw .system("memfd_create", -fd) }
        let p = mmap(nil, ChannelLayout.size, PROT_READ | PROT_WRITE, clinux_map_shared(), fd, 0)
        guard let p, p != clinux_map_failed() else {
            let e = errno
            close(fd)
            throw .system("mmap", e)
        }
        var pipe: (Int32, Int32) = (-1, -1)
        let r = withUnsafeMutableBytes(of: &pipe) { cdios_pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        guard r == 0 else {
            let e = -r
            munmap(p, ChannelLayout.size)
            close(fd)
            throw .system("pipe2", e)
        }
        memory = fd
        base = p
        bellRead = pipe.0
        bellWrite = pipe.1
        base.storeBytes(of: ChannelLayout.magic, toByteOffset: ChannelLayout.Header.magic, as: UInt64.self)
        base.storeBytes(of: ChannelLayout.ringEntries, toByteOffset: ChannelLayout.Header.ringEntries, as: UInt32.self)
        base.storeBytes(
            of: UInt32(ChannelLayout.windowSize), toByteOffset: ChannelLayout.Header.windowSize, as: UInt32.self)
        base.storeBytes(
            of: UInt32(ChannelLayout.windowOffset), toByteOffset: ChannelLayout.Header.windowOffset, as: UInt32.self)
        base.storeBytes(of: trusted ? 1 : 0, toByteOffset: ChannelLayout.Header.trusted, as: UInt32.self)
    }

    /// Told when the channel's memory and descriptors are released.
    var released: (() -> Void)? = nil

    deinit {
        released?()
        munmap(base, ChannelLayout.size)
        close(memory)
        close(bellRead)
        close(bellWrite)
    }

    /// The window: where a call's data lies.
    var window: UnsafeMutableRawPointer { base + ChannelLayout.windowOffset }

    func setPID(_ pid: Int32) { base.storeBytes(of: pid, toByteOffset: ChannelLayout.Header.pid, as: Int32.self) }

    /// Tells the process which CPU its instance runs on (-1: not pinned to one).
    func setInstanceCPU(_ cpu: Int32) {
        base.storeBytes(of: cpu, toByteOffset: ChannelLayout.Header.instanceCPU, as: Int32.self)
    }

    private func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + offset).assumingMemoryBound(to: UInt32.self)
    }

    // MARK: ServicedChannel

    var needsService: Bool {
        if ended.load(ordering: .acquiring) { return true }
        if held != nil { return completionRoom }
        return clinux_load_acquire_u32(word(ChannelLayout.Header.submissionTail)) != submissionHead
    }

    var processEnded: Bool { ended.load(ordering: .acquiring) }

    func instanceWillSleep() {
        // Sequentially consistent with the process's fence: either it sees the
        // flag and rings, or the instance sees its entry before sleeping.
        clinux_store_seqcst_u32(word(ChannelLayout.Header.instanceSleeping), 1)
    }

    func instanceDidWake() { clinux_store_release_u32(word(ChannelLayout.Header.instanceSleeping), 0) }

    func pauseChanged(paused: Bool) { onPause?(paused) }

    // MARK: The rings

    /// The next submission, copied out of the ring, or nil. Throws when the
    /// process moved the tail backwards or more than a ring ahead.
    func nextSubmission() throws(ChannelError) -> SubmissionEntry? {
        let tail = clinux_load_acquire_u32(word(ChannelLayout.Header.submissionTail))
        let waiting = tail &- submissionHead
        if waiting == 0 { return nil }
        guard waiting <= ChannelLayout.ringEntries else {
            throw .protocolViolation("submission tail \(tail) is \(waiting) entries past head \(submissionHead)")
        }
        let slot = Int(submissionHead & (ChannelLayout.ringEntries - 1))
        let at = base + ChannelLayout.submissionOffset + slot * ChannelLayout.submissionSize
        let entry = SubmissionEntry(bytes: UnsafeRawBufferPointer(start: at, count: ChannelLayout.submissionSize))!
        submissionHead &+= 1
        clinux_store_release_u32(word(ChannelLayout.Header.submissionHead), submissionHead)
        return entry
    }

    private var completionRoom: Bool {
        let head = clinux_load_acquire_u32(word(ChannelLayout.Header.completionHead))
        return completionTail &- head < ChannelLayout.ringEntries
    }

    /// Posts a completion and wakes the process if it sleeps. A full ring
    /// keeps it (`held`) until the process makes room; throws when the
    /// process moved its head past what was posted.
    func complete(_ entry: CompletionEntry) throws(ChannelError) {
        if let h = held {
            held = nil
            try complete(h)
            if held != nil {
                // Still full: this one waits behind it (a synchronous client
                // never has two calls outstanding; an asynchronous one is told
                // by the order).
                throw .protocolViolation("two completions wait on a full ring")
            }
        }
        let head = clinux_load_acquire_u32(word(ChannelLayout.Header.completionHead))
        let inFlight = completionTail &- head
        guard inFlight <= ChannelLayout.ringEntries else {
            throw .protocolViolation("completion head \(head) is past tail \(completionTail)")
        }
        guard inFlight < ChannelLayout.ringEntries else {
            held = entry
            return
        }
        let slot = Int(completionTail & (ChannelLayout.ringEntries - 1))
        let at = base + ChannelLayout.completionOffset + slot * ChannelLayout.completionSize
        entry.write(to: UnsafeMutableRawBufferPointer(start: at, count: ChannelLayout.completionSize))
        completionTail &+= 1
        clinux_store_seqcst_u32(word(ChannelLayout.Header.completionTail), completionTail)
        if clinux_load_seqcst_u32(word(ChannelLayout.Header.processSleeping)) != 0 {
            _ = cdios_futex_wake(word(ChannelLayout.Header.completionTail))
        }
    }

    /// Sends the completion held back by a full ring, if there is room now.
    func flushHeld() throws(ChannelError) {
        guard let h = held, completionRoom else { return }
        held = nil
        try complete(h)
    }
}

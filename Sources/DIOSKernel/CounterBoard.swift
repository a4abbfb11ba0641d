import CLinux

/// What an instance publishes for readers on other threads (the metrics
/// endpoint, `dios status`): its counters and a few sizes, one word each.
///
/// The instance copies them here every `CounterBoard.period` polls and before
/// it sleeps; a reader loads the words whenever it likes. Each word is stored
/// and loaded atomically (release/acquire), so a reader never sees a torn
/// value or stalls the instance, and nothing is locked; words may be a
/// period apart from each other, which a scrape of counters does not mind.
/// The only memory shared between an instance and other threads besides its
/// rings and queues, and written by the instance alone.
public final class CounterBoard: @unchecked Sendable {
    /// One published value. Counters only grow; gauges (`isGauge`) go both ways.
    public enum Field: Int, CaseIterable, Sendable {
        case calls, messagesIn, messagesOut, readInPlace, polls, idlePolls
        case tasksStarted, tasksExited, timersFired, selectSuspends, remoteRefused, namesRelayed
        case peersUp, peersDown
        case framesSent, framesReceived, framesResent, framesDuplicate
        case framesForged, framesReplayed, framesFromStrangers, framesMalformed
        case tasksLive, taskProcesses, objectsLive, peersReachable, nameInsertions, nameTombstones

        public var isGauge: Bool { rawValue >= Field.tasksLive.rawValue }
    }

    /// Polls between copies while the instance is busy.
    static let period: UInt64 = 1024

    private let words: UnsafeMutablePointer<UInt64>

    init() {
        words = .allocate(capacity: Field.allCases.count)
        words.initialize(repeating: 0, count: Field.allCases.count)
    }

    deinit { words.deallocate() }

    /// The instance's thread only.
    @inline(__always)
    func store(_ field: Field, _ value: UInt64) { clinux_store_release_u64(words + field.rawValue, value) }

    /// Any thread.
    public func load(_ field: Field) -> UInt64 { clinux_load_acquire_u64(words + field.rawValue) }
}

extension KernelInstance {
    /// Copies the counters and sizes to `board` (the instance's thread).
    func publishCounters() {
        // Stored one by one: an array of pairs would allocate each time.
        let c = counters
        board.store(.calls, c.calls)
        board.store(.messagesIn, c.messagesIn)
        board.store(.messagesOut, c.messagesOut)
        board.store(.readInPlace, c.readInPlace)
        board.store(.polls, c.polls)
        board.store(.idlePolls, c.idlePolls)
        board.store(.tasksStarted, c.tasksStarted)
        board.store(.tasksExited, c.tasksExited)
        board.store(.timersFired, c.timersFired)
        board.store(.selectSuspends, c.selectSuspends)
        board.store(.remoteRefused, c.remoteRefused)
        board.store(.namesRelayed, c.namesRelayed)
        board.store(.peersUp, c.peersUp)
        board.store(.peersDown, c.peersDown)
        if let wire {
            var sent: UInt64 = 0
            var received: UInt64 = 0
            var resent: UInt64 = 0
            var duplicates: UInt64 = 0
            var reachable: UInt64 = 0
            for s in wire.sessions {
                sent &+= s.counters.framesSent
                received &+= s.counters.framesReceived
                resent &+= s.counters.retransmits
                duplicates &+= s.counters.duplicates
                if wire.isReachable(s.peer) { reachable &+= 1 }
            }
            let e = wire.counters
            board.store(.framesSent, sent)
            board.store(.framesReceived, received)
            board.store(.framesResent, resent)
            board.store(.framesDuplicate, duplicates)
            board.store(.framesForged, e.forged)
            board.store(.framesReplayed, e.replayed)
            board.store(.framesFromStrangers, e.unknownPeer)
            board.store(.framesMalformed, e.malformed)
            board.store(.peersReachable, reachable)
        }
        board.store(.tasksLive, UInt64(tasks.reduce(0) { $1.live ? $0 + 1 : $0 }))
        board.store(.taskProcesses, UInt64(channels.count))
        board.store(.objectsLive, UInt64(objects.liveCount))
        let size = nameService.others.size
        board.store(.nameInsertions, UInt64(size.insertions))
        board.store(.nameTombstones, UInt64(size.tombstones))
    }
}

import CLinux
public import DIOSCore

/// `select`, timers and one turn of the polling loop.
extension KernelInstance {
    /// Whether `beginRead` (or with `writable`, `beginWrite`) on the object would
    /// proceed now. A deleted object counts as ready, so a waiter wakes and learns
    /// of the deletion from its next call.
    @inline(__always)
    func isReady(_ i: Int, writable: Bool) -> Bool {
        objects.records.withUnsafeBufferPointer { Self.isReady($0.baseAddress! + i, writable: writable) }
    }

    /// Readiness of a record read in place (no copy, no reference counting).
    @inline(__always)
    static func isReady(_ r: UnsafePointer<ObjectRecord>, writable: Bool) -> Bool {
        if r.pointee.deleted || !r.pointee.live || r.pointee.bridge == .elsewhere { return true }
        switch r.pointee.kind {
        case .blob:
            return writable
                ? !r.pointee.writerOpen && r.pointee.sharedHolds == 0 : !(r.pointee.writerOpen && r.pointee.exclusive)
        case .stream:
            guard let ring = r.pointee.ring else { return true }
            if ring.isClosed { return true }
            // A side a task process maps is open for good, but ready as its
            // ring is: the process itself waits on it.
            return writable
                ? (!r.pointee.writerOpen || r.pointee.writerMapped) && !r.pointee.waitsForFrame && ring.hasSpace()
                : (!r.pointee.readerOpen || r.pointee.readerMapped) && ring.hasMessage()
        case .timer:
            return writable ? !r.pointee.writerOpen : r.pointee.ready
        case .task:
            return !writable && r.pointee.ready
        case .program:
            return true
        }
    }

    /// The index of the first ready reference, or nil. Validates every reference
    /// (and the read or write right) first.
    package func firstReady(_ task: TaskID, _ refs: [Ref], flags: Flags) throws(CallError) -> Int? {
        checkThread()
        let writable = flags.contains(.writable)
        let t = try taskIndex(task)
        var found: Int? = nil
        for (n, ref) in refs.enumerated() {
            let entry: ReferenceEntry
            entry = try referenceEntry(t, ref, requiring: writable ? .write : .read)
            if found == nil && (!objects.isLive(entry.object) || isReady(Int(entry.object.index), writable: writable)) {
                found = n
            }
        }
        return found
    }

    /// `select`: the index of the first ready reference among `refs`, waiting
    /// until one is. With a timer among them this is a timeout.
    ///
    /// Before suspending the task it spins on the references for a while
    /// (`selectSpin` turns, cut short when anything else needs the instance):
    /// a stream fed from another core then costs a cache-line transfer, not a
    /// trip through the scheduler.
    ///
    /// `spun`: the caller has just spun (`selectNow`), so the first round
    /// suspends without spinning again.
    package func select(_ task: TaskID, _ refs: [Ref], flags: Flags, spun: Bool = false) async throws(CallError) -> Int
    {
        checkThread()
        counters.calls &+= 1
        guard !refs.isEmpty else { throw .invalidArgument("select needs at least one reference") }
        var spinNow = !spun
        while true {
            try await waitWhilePaused(task)
            if let n = try firstReady(task, refs, flags: flags) { return n }
            if spinNow, let n = try spin(task, refs, flags: flags) { return n }
            spinNow = true
            let t = try taskIndex(task)
            var watched: [UInt32] = []
            var shared = false
            watched.reserveCapacity(refs.count)
            for ref in refs {
                let o = try! tasks[t].refs.entry(ref).object
                watched.append(o.index)
                if objects.records[Int(o.index)].crossInstance, let ring = objects.records[Int(o.index)].ring {
                    shared = true
                    // Claim the side this task waits on, so the peer knows whose
                    // doorbell to ring when it publishes or frees a slot.
                    _ = ring.claim(writer: flags.contains(.writable), for: claimID)
                }
            }
            let writable = flags.contains(.writable)
            counters.selectSuspends &+= 1
            // The body of withUnsafeContinuation may run after other jobs of this
            // instance (the runtime can hop before calling it), so readiness is
            // checked again there, where nothing else can interleave.
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let ready: Bool
                // An error counts as ready: it surfaces on the retry.
                do { ready = try firstReady(task, refs, flags: flags) != nil } catch { ready = true }
                if ready {
                    c.resume()
                } else {
                    waiters.append(
                        Waiter(task: task, objects: watched, writable: writable, shared: shared, continuation: c))
                }
            }
        }
    }

    /// `select` without suspending: the first ready reference now or after the
    /// spin, or nil when the task must wait (or is paused). The common case of
    /// a blocking `select` ends here, with no async frames at all.
    @usableFromInline
    package func selectNow(_ task: TaskID, _ refs: [Ref], flags: Flags) throws(CallError) -> Int? {
        checkThread()
        guard !refs.isEmpty, !isPaused(task) else { return nil }
        if let n = try firstReady(task, refs, flags: flags) {
            counters.calls &+= 1
            return n
        }
        if let n = try spin(task, refs, flags: flags) {
            counters.calls &+= 1
            return n
        }
        return nil
    }

    /// Spins on `refs` until one is ready, the budget is spent, or the instance
    /// has other work (jobs, control messages, a due timer). `firstReady` has just
    /// validated the references, and nothing can change this task's table while
    /// it spins (the instance is busy running it), so only the objects are watched.
    func spin(_ task: TaskID, _ refs: [Ref], flags: Flags) throws(CallError) -> Int? {
        guard selectSpin > 0 else { return nil }
        let t = try taskIndex(task)
        let writable = flags.contains(.writable)
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: refs.count) { watched -> Int? in
            for (n, ref) in refs.enumerated() {
                watched[n] = Int((try? tasks[t].refs.entry(ref).object.index).map { Int($0) } ?? 0)
            }
            var budget = selectSpin
            // Frames from other nodes arrive only when the wire is polled, so
            // with a wire it is polled after every look, with no pause between
            // (a poll of an idle wire takes longer than a pause, and a frame
            // that waits for the next look waits half a loop on average: 64
            // pauses are 1-3 µs, as long as a whole round trip over memif).
            let looks = wireRef == nil ? 64 : 1
            // Every 32nd wire poll is a full one (timers, what waits to go, a
            // fresh clock: a few microseconds apart); those between only take
            // what arrived.
            var wirePolls = 0
            var wireNow: UInt64 = 0
            while budget > 0 {
                // The records cannot move while we look: only this thread changes them.
                let found = objects.records.withUnsafeBufferPointer { records -> Int? in
                    let base = records.baseAddress!
                    for _ in 0..<looks {
                        for n in 0..<refs.count where Self.isReady(base + watched[n], writable: writable) { return n }
                        if looks > 1 { clinux_cpu_relax() }
                    }
                    return nil
                }
                if let found { return found }
                // A wire poll takes about as long as four pauses: the spin
                // lasts about as long with a wire as without.
                budget -= wireRef == nil ? looks : 4
                // (Outside the records' scope: polling the wire may change them.)
                if wireRef != nil {
                    if wirePolls & 31 == 0 {
                        _ = pollWire()  // sets turnClock
                        wireNow = turnClock
                    } else {
                        _ = pollWire(quick: wireNow)
                    }
                    wirePolls &+= 1
                }
                if executor.hasPendingHint || hasControlMessages() || channelsNeedService { return nil }
                if !timers.isEmpty, let due = nanosecondsToNextTimer(), due == 0 { return nil }
            }
            return nil
        }
    }

    /// Fires due timers. Returns how many fired.
    func fireTimers(now: UInt64) -> Int {
        var fired = 0
        while let top = timers.min, top.deadline <= now {
            _ = timers.popMin()
            let i = Int(top.object.index)
            guard objects.isLive(top.object), objects.records[i].deadline == top.deadline, !objects.records[i].ready
            else {
                continue  // deleted or re-armed since
            }
            objects.records[i].ready = true
            objects.records[i].length = 8
            if let buffer = objects.records[i].buffer {
                pool.address(of: buffer).storeBytes(of: now.littleEndian, as: UInt64.self)
            }
            objects.records[i].version &+= 2
            markDirty(top.object)
            fired += 1
        }
        counters.timersFired &+= UInt64(fired)
        return fired
    }

    /// Marks dirty the objects of waiters that watch a ring shared with another
    /// instance and became ready: the other instance changed it, not us.
    func markSharedReady() {
        for w in waiters where w.shared {
            for o in w.objects where isReady(Int(o), writable: w.writable) { dirty.append(o) }
        }
    }

    /// Whether some waiter watches a shared ring that is ready now.
    func sharedReady() -> Bool {
        waiters.contains { w in w.shared && w.objects.contains { isReady(Int($0), writable: w.writable) } }
    }

    /// Waiters that watch a shared ring.
    var sharedWatchers: Int { waiters.lazy.filter(\.shared).count }

    /// Resumes the waiters watching an object that changed. Returns how many.
    func wakeWaiters() -> Int {
        guard !dirty.isEmpty else { return 0 }
        var woken = 0
        var n = 0
        while n < waiters.count {
            if waiters[n].objects.contains(where: dirty.contains) {
                let w = waiters[n]
                waiters[n] = waiters[waiters.count - 1]
                waiters.removeLast()
                w.continuation.resume()
                woken += 1
            } else {
                n += 1
            }
        }
        dirty.removeAll(keepingCapacity: true)
        return woken
    }

    /// One turn of the polling loop: run ready tasks, fire due timers, wake
    /// waiters. Returns the work done (0: idle).
    @discardableResult
    package func poll() -> Int {
        checkThread()
        counters.polls &+= 1
        // Only sends to other nodes use it: an instance without a wire reads
        // no clock it does not need.
        if wireRef != nil { turnClock = clinux_monotonic_ns() }
        var work = executor.runPending()
        work += drainControl()
        if !timers.isEmpty { work += fireTimers(now: clinux_monotonic_ns()) }
        // The turn's clock still holds when nothing ran before the wire's poll
        // (most polls): one read of the clock a turn instead of two.
        if wire != nil { work += pollWire(clock: work == 0 ? turnClock : nil) }
        if sharedWatchers > 0 { markSharedReady() }
        work += wakeWaiters()
        if !channels.isEmpty { work += serviceChannels() }
        if !streamMaps.isEmpty { work += serviceStreamMaps() }
        if work == 0 { counters.idlePolls &+= 1 }
        if counters.polls % CounterBoard.period == 0 { publishCounters() }
        return work
    }

    /// Nanoseconds until the next timer is due (nil: no timer).
    func nanosecondsToNextTimer() -> UInt64? {
        guard let top = timers.min else { return nil }
        let now = clinux_monotonic_ns()
        return top.deadline > now ? top.deadline - now : 0
    }

    /// Whether the loop has nothing to do right now (checked just before sleeping).
    func isIdle() -> Bool {
        // Checked after the loop announced it is going to sleep: a peer that
        // publishes into a watched ring from now on rings the doorbell (the
        // ring's side is claimed by this instance, see `select`).
        !executor.hasPending && dirty.isEmpty && !hasControlMessages() && !sharedReady() && remoteOutbox.isEmpty
            && (nanosecondsToNextTimer().map { $0 > 0 } ?? true) && (channels.isEmpty || channelsIdle())
            && (streamMaps.isEmpty || !streamMapsMoved)
    }

    /// Swift tasks still running on this instance.
    package var runningTaskCount: Int { tasks.lazy.filter { $0.live && $0.handle != nil }.count }
}

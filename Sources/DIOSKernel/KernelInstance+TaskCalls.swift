import CLinux
package import DIOSCore
import DIOSMemory

// The calls on tasks: run, pause and resume, stop.
extension KernelInstance {
    /// `run`: starts the program on this instance as a new task (trusted tasks
    /// only). `arguments` are delegated with the rights the caller holds before
    /// the task first runs. Returns a reference to the task object.
    ///
    /// With `instance` naming another instance of the node, the task starts there
    /// (the core that instance polls); without it, here, next to its parent.
    /// `invocation` is what a program that is an executable gets as its
    /// arguments and environment (`invocation(of:)`); it goes with the run
    /// wherever it starts, and one that cannot go is refused here.
    package func run(
        _ task: TaskID, _ programRef: Ref, arguments: [Ref], flags: Flags,
        label: String? = nil, invocation: Invocation = Invocation(), on instance: Int? = nil,
        onNode remote: InstanceID? = nil
    ) throws(CallError) -> Ref {
        checkThread()
        counters.calls += 1
        let t = try taskIndex(task)
        guard tasks[t].trusted else { throw .untrusted(.run) }
        if let why = invocation.refusal { throw .invalidArgument(why) }
        let (programEntry, p) = try resolve(task, programRef, .run)
        guard programEntry.kind == .program else { throw .wrongKind(.run, programEntry.kind) }
        guard let registered = objects.records[p].program, let body = programs[registered] else { throw .objectDeleted }
        var argumentEntries: [ReferenceEntry] = []
        for ref in arguments {
            let (entry, _) = try resolve(task, ref, .copy)
            argumentEntries.append(entry)
        }
        if let remote {
            return try runOnNode(
                t, programEntry, arguments: argumentEntries, refs: arguments, flags: flags, label: label ?? "program",
                invocation: invocation, on: remote)
        }
        if let instance, instance != index {
            return try runOnSibling(
                t, programEntry, arguments: argumentEntries, flags: flags, label: label ?? "program",
                invocation: invocation, on: instance)
        }
        guard tasks[t].refs.count < tasks[t].refs.capacity else { throw .reference(.tableFull) }
        let child = try makeTask(trusted: !flags.contains(.untrusted), label: label ?? "program")
        let c = Int(child.index)
        tasks[c].invocation = invocation
        for e in argumentEntries {
            let ref = try! insertRef(c, e)
            tasks[c].delegated.append(ref)
        }
        let ref = try! insertRef(t, entry(for: tasks[c].object, rights: .all))
        start(child, entry: body)
        return ref
    }

    /// `pause`: stops the task from being scheduled at its next kernel call, or
    /// with `.resume`, lets it run again.
    package func pause(_ task: TaskID, _ taskRef: Ref, flags: Flags) throws(CallError) {
        checkThread()
        counters.calls += 1
        let (entry, o) = try resolve(task, taskRef, .run)
        guard entry.kind == .task else { throw .wrongKind(.pause, entry.kind) }
        guard !objects.records[o].ready else { throw .taskStopped }
        let resume = flags.contains(.resume)
        if let node = objects.records[o].remoteNode {  // a proxy: the task runs on another node
            if let target = objects.records[o].peerTask {
                sendToPeer(.pause(task: target, resume: resume), to: node)
            } else {
                objects.records[o].pendingPause = resume
            }
            return
        }
        if let sibling = objects.records[o].siblingInstance {  // a proxy: the task runs on a sibling
            if let target = objects.records[o].peerTask {
                send(.pause(task: target, resume: resume), to: sibling)
            } else {
                objects.records[o].pendingPause = resume
            }
            return
        }
        let target = objects.records[o].task
        let i = Int(target.index)
        guard i < tasks.count, tasks[i].generation == target.generation, tasks[i].live else { throw .taskStopped }
        setPaused(target, paused: !resume)
    }

    /// Pauses or resumes one of this instance's tasks.
    func setPaused(_ target: TaskID, paused: Bool) {
        let i = Int(target.index)
        guard i < tasks.count, tasks[i].generation == target.generation, tasks[i].live else { return }
        tasks[i].paused = paused
        if !channels.isEmpty { channelPauseChanged(target, paused: paused) }
        if !paused {
            let resumed = tasks[i].pauseWaiters
            tasks[i].pauseWaiters.removeAll()
            for w in resumed { w.resume() }
        }
    }

    /// The label `run` gave the task.
    package func label(of task: TaskID) -> String {
        let i = Int(task.index)
        return i < tasks.count && tasks[i].generation == task.generation ? tasks[i].label : ""
    }

    /// The arguments and environment `run` gave the task (empty for most).
    package func invocation(of task: TaskID) -> Invocation {
        let i = Int(task.index)
        return i < tasks.count && tasks[i].generation == task.generation ? tasks[i].invocation : Invocation()
    }

    /// Whether a task is paused.
    package func isPaused(_ task: TaskID) -> Bool {
        let i = Int(task.index)
        return i < tasks.count && tasks[i].generation == task.generation && tasks[i].paused
    }

    /// Suspends the calling task while it is paused. Every blocking call passes here.
    package func waitWhilePaused(_ task: TaskID) async throws(CallError) {
        checkThread()
        while true {
            let i = try taskIndex(task)
            guard tasks[i].paused else { return }
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                // Checked again here: the body may run after other jobs (see `select`).
                if self.tasks[i].generation == task.generation && self.tasks[i].paused && !self.tasks[i].stopping {
                    self.tasks[i].pauseWaiters.append(c)
                } else {
                    c.resume()
                }
            }
        }
    }

    /// Tells a task to stop: its blocked and future calls fail with `.taskStopped`.
    package func stop(_ target: TaskID) {
        let i = Int(target.index)
        guard i < tasks.count, tasks[i].generation == target.generation, tasks[i].live else { return }
        tasks[i].stopping = true
        tasks[i].handle?.cancel()
        let paused = tasks[i].pauseWaiters
        tasks[i].pauseWaiters.removeAll()
        for w in paused { w.resume() }
        tasks[i].delegationWaiter?.resume()
        tasks[i].delegationWaiter = nil
        if !channels.isEmpty { wakeChannelServer(of: target) }
        var remaining: [Waiter] = []
        for w in waiters {
            if w.task == target { w.continuation.resume() } else { remaining.append(w) }
        }
        waiters = remaining
    }

    /// Stops every task (node shutdown).
    package func stopAll() {
        checkThread()
        stopping = true
        for i in tasks.indices where tasks[i].live {
            stop(TaskID(index: UInt32(i), generation: tasks[i].generation))
        }
    }
}

import CLinux
package import DIOSCore

#if canImport(Glibc)
import Glibc
#endif

/// A task process's channel as its instance polls it. `DIOSProcess` implements
/// it; the kernel only asks whether the channel's server has work and tells
/// the channel what happens to its task.
package protocol ServicedChannel: AnyObject {
    /// Submissions wait, or the process has ended: the server should run.
    var needsService: Bool { get }
    /// The process has ended (its watcher says so, from any thread).
    var processEnded: Bool { get }
    /// The instance is about to sleep: the process must ring its doorbell to
    /// wake it. `instanceDidWake` undoes it.
    func instanceWillSleep()
    func instanceDidWake()
    /// The task was paused or resumed by a `pause` call.
    func pauseChanged(paused: Bool)
    /// The process may run on the instance's own CPU: the instance waits for
    /// it by yielding that CPU, not by spinning on it.
    var sharesCPU: Bool { get }
}

/// A channel the instance polls, and its server's continuation while it waits.
struct ChannelSlot {
    let channel: any ServicedChannel
    let task: TaskID
    /// The read end of the process's doorbell (a pipe): the instance's sleep wakes on it.
    let bell: Int32
    var waiter: UnsafeContinuation<Void, Never>? = nil
}

// The channels of task processes: the instance looks at each one's submission
// ring every turn (a load from shared memory) and resumes its server when
// entries wait; it sleeps on their doorbells as on its own.
extension KernelInstance {
    /// Starts polling `channel` for `task`; `bell` (a pipe's read end) joins
    /// the descriptors the instance's sleep wakes on.
    package func addChannel(_ channel: any ServicedChannel, for task: TaskID, bell: Int32) {
        checkThread()
        if channelBells < 0 { channelBells = clinux_epoll_create() }
        _ = clinux_epoll_add(channelBells, bell)
        channels.append(ChannelSlot(channel: channel, task: task, bell: bell))
    }

    /// Stops polling the channel of `task`.
    package func removeChannel(for task: TaskID) {
        checkThread()
        guard let n = channels.firstIndex(where: { $0.task == task }) else { return }
        _ = clinux_epoll_remove(channelBells, channels[n].bell)
        channels[n].waiter?.resume()
        channels.remove(at: n)
    }

    /// Suspends the server of `task`'s channel until it needs service or
    /// (unless `ignoringStop`: a server waiting for its killed process to go)
    /// the task is told to stop.
    package func waitForService(_ task: TaskID, ignoringStop: Bool = false) async {
        checkThread()
        guard let n = channels.firstIndex(where: { $0.task == task }) else { return }
        if channels[n].channel.needsService || (!ignoringStop && isStopping(task)) { return }
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            // Checked again here: the body may run after other jobs (see `select`).
            if let n = channels.firstIndex(where: { $0.task == task }), !channels[n].channel.needsService,
                ignoringStop || !isStopping(task)
            {
                channels[n].waiter = c
            } else {
                c.resume()
            }
        }
    }

    /// Whether `task` has been told to stop (or is gone).
    package func isStopping(_ task: TaskID) -> Bool {
        let i = Int(task.index)
        return !(i < tasks.count && tasks[i].generation == task.generation && tasks[i].live) || tasks[i].stopping
    }

    /// Resumes the servers whose channels have work, and stops the task of a
    /// process that ended while its server waits elsewhere (in `select`, or
    /// paused), so that wait ends. Returns how many were woken.
    func serviceChannels() -> Int {
        var woken = 0
        var n = 0
        while n < channels.count {
            if let c = channels[n].waiter {
                if channels[n].channel.needsService {
                    channels[n].waiter = nil
                    c.resume()
                    woken += 1
                }
            } else if channels[n].channel.processEnded, !isStopping(channels[n].task) {
                stop(channels[n].task)
                woken += 1
            }
            n += 1
        }
        return woken
    }

    /// Resumes the server of `task` (it was told to stop).
    func wakeChannelServer(of task: TaskID) {
        guard let n = channels.firstIndex(where: { $0.task == task }), let c = channels[n].waiter else { return }
        channels[n].waiter = nil
        c.resume()
    }

    /// Whether a waiting server has work: a spinning `select` gives way to it.
    @inline(__always)
    var channelsNeedService: Bool {
        !channels.isEmpty && channels.contains { $0.waiter != nil && $0.channel.needsService }
    }

    /// Tells the channel of `task`, if it has one, that it was paused or resumed.
    func channelPauseChanged(_ task: TaskID, paused: Bool) {
        guard let n = channels.firstIndex(where: { $0.task == task }) else { return }
        channels[n].channel.pauseChanged(paused: paused)
    }

    /// Before sleeping: every channel asks its process to ring, then says
    /// whether work arrived meanwhile.
    func channelsIdle() -> Bool {
        for c in channels { c.channel.instanceWillSleep() }
        return !channels.contains { $0.channel.needsService }
    }

    /// After sleeping: the doorbells are drained (they are level-triggered).
    package func channelsAwake() {
        guard !channels.isEmpty else { return }
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        for c in channels {
            c.channel.instanceDidWake()
            withUnsafeMutableBytes(of: &scratch) { while read(c.bell, $0.baseAddress, $0.count) > 0 {} }
        }
    }

    /// How many references `task` holds (0 once it is gone), stopping or not.
    package func referenceCount(of task: TaskID) -> Int {
        let t = Int(task.index)
        guard t < tasks.count, tasks[t].generation == task.generation, tasks[t].live else { return 0 }
        return tasks[t].refs.references.count
    }

    /// Closes the streams `task` writes that this instance holds: their
    /// readers take what was written, then `.unreachable(this instance,
    /// reason)` instead of waiting for messages that will never come. For a
    /// task process that was killed or broke its channel.
    package func endStreams(writtenBy task: TaskID, reason: String) {
        checkThread()
        let t = Int(task.index)
        guard t < tasks.count, tasks[t].generation == task.generation, tasks[t].live else { return }
        for (_, entry) in tasks[t].refs.references where entry.kind == .stream && entry.rights.contains(.write) {
            let i = Int(entry.object.index)
            guard objects.isLive(entry.object), let ring = objects.records[i].ring,
                objects.records[i].remoteFailure == nil, objects.records[i].bridge == .none
            else { continue }
            objects.records[i].remoteFailure = reason
            objects.records[i].remotePeer = id
            ring.close()
            objects.records[i].version &+= 1
            markDirty(entry.object)
        }
    }

    /// Whether anything else waits for the instance: runnable jobs or
    /// messages from its siblings. A server spinning for its process's next
    /// call gives way to them.
    package var hasOtherWork: Bool { executor.hasPendingHint || hasControlMessages() }

    /// How many channels this instance polls.
    package var channelCount: Int { channels.count }

    /// Whether a task process may run on this instance's CPU: the loop's
    /// idle spin yields the CPU instead of pausing on it.
    package var hostsProcessOnItsCPU: Bool { !channels.isEmpty && channels.contains { $0.channel.sharesCPU } }

    /// The descriptor the instance's sleep also wakes on for its channels (-1: none).
    package var channelBellFD: Int32 { channels.isEmpty ? -1 : channelBells }
}

extension KernelInstance {
    /// The node's arena, for a trusted task process to map: its descriptor
    /// (close-on-exec) and size.
    package var arenaDescriptor: Int32 { pool.arena.descriptor }
    package var arenaSize: Int { pool.arena.size }
}

import CLinux
package import DIOSCore
import DIOSMemory
import DIOSWire
import HeapModule
import Logging

#if canImport(Glibc)
import Glibc
#endif

// The instance's objects: their records, buffers and reclaiming; and the
// helpers that resolve a task's reference to one.
extension KernelInstance {
    /// Creates an object record with a zeroed buffer from the pool, and names it.
    func makeObject(kind: ObjectKind, name: Name, bufferSize: Int, maxWriteSize: Int, flags: Flags) -> ObjectID? {
        guard let buffer = pool.allocate(bufferSize) else { return nil }
        // Reused buffers hold a former object's bytes: never hand those out.
        pool.address(of: buffer).initializeMemory(as: UInt8.self, repeating: 0, count: bufferSize)
        var record = ObjectRecord()
        record.kind = kind
        record.name = name
        record.buffer = buffer
        record.maxWriteSize = maxWriteSize
        record.persistent = flags.contains(.persistent)
        let id = objects.insert(record)
        names.insert(name, id)
        return id
    }

    /// Registers a program under `name` and returns the program object.
    package func registerProgram(_ name: Name, entry: @escaping TaskEntry) -> ObjectID {
        checkThread()
        programs.append(entry)
        var record = ObjectRecord()
        record.kind = .program
        record.name = name
        record.program = programs.count - 1
        record.ready = true
        let id = objects.insert(record)
        names.insert(name, id)
        return id
    }

    /// Whether a program object is registered here under `name`.
    package func hasProgram(_ name: Name) -> Bool {
        checkThread()
        return names.first(of: name) { objects.isLive($0) && objects.records[Int($0.index)].kind == .program } != nil
    }

    /// Removes an object's name and, once no transaction is open on it, its buffer and slot.
    func destroy(_ object: ObjectID) {
        let i = Int(object.index)
        guard objects.isLive(object) else { return }
        let name = objects.records[i].name
        unpublish(i)
        names.remove(name, object)
        if objects.records[i].bridge != .none && !objects.records[i].originHere {
            let key = RemoteEnd(peer: objects.records[i].remotePeer, origin: objects.records[i].remoteOrigin)
            if remoteEnds[key] == object {
                remoteEnds[key] = nil
                lastRemoteEnd = nil
            }
        }
        if let owner = objects.records[i].ownerElsewhere {
            standIns[RemoteEnd(peer: owner, origin: objects.records[i].remoteOrigin)] = nil
        }
        if objects.records[i].kind == .program, let registered = objects.records[i].program {
            programs[registered] = nil
        }
        objects.records[i].deleted = true
        objects.records[i].version &+= 2
        markDirty(object)
        // A process working a side of the ring learns of the delete from the
        // ring itself (the kernel tells it nothing on its data path).
        if objects.records[i].readerMapped || objects.records[i].writerMapped { objects.records[i].ring?.close() }
        // A stream read on another node is drained to it first (the bridge pump
        // reclaims it once empty, after telling the other end it closed).
        if objects.records[i].bridge == .sends && objects.records[i].remoteFailure == nil { return }
        if objects.records[i].openTransactions == 0 { reclaim(object) }
    }

    /// Lets go of an end made for a task that exited (`madeEnds`) without
    /// closing the stream it belongs to: the stream is its creator's, who may
    /// hand it to another task. A stream end sending to another node drains
    /// there first.
    func retire(_ object: ObjectID) {
        guard objects.isLive(object) else { return }
        objects.records[Int(object.index)].keepStreamOpen = true
        destroy(object)
    }

    /// Frees a deleted object's buffer and slot. A stream ring shared with other
    /// instances is closed, and its memory kept until every end has let go.
    func reclaim(_ object: ObjectID) {
        let i = Int(object.index)
        if let ring = objects.records[i].ring, objects.records[i].crossInstance {
            if !objects.records[i].keepStreamOpen { ring.close() }
            let remaining = ring.adjustEnds(by: -1)
            if let owner = objects.records[i].ringOwner {
                // An attached end: the memory is the owner's to free.
                if remaining == 0 { send(.ringReleased(object: owner.object), to: owner.instance) }
                wakePeers(of: ring)
            } else if remaining > 0 {
                wakePeers(of: ring)
                objects.records[i].awaitingEnds = true
                return  // freed when `.ringReleased` arrives
            }
        }
        releaseHeldFrames(of: i, copyIn: false)
        if let buffer = objects.records[i].buffer { pool.free(buffer) }
        if let shadow = objects.records[i].shadow { pool.free(shadow) }
        objects.records[i].buffer = nil
        objects.records[i].shadow = nil
        objects.release(object)
    }

    func markDirty(_ object: ObjectID) {
        if !waiters.isEmpty { dirty.append(object.index) }
    }

    // MARK: - Reference helpers

    /// Resolves a reference of `task`, checking rights, and the object it names.
    @inline(__always)
    func resolve(_ task: TaskID, _ ref: Ref, _ rights: Rights) throws(CallError) -> (entry: ReferenceEntry, index: Int)
    {
        let t = try taskIndex(task)
        let entry: ReferenceEntry
        entry = try referenceEntry(t, ref, requiring: rights)
        guard objects.isLive(entry.object) else { throw .objectDeleted }
        return (entry, Int(entry.object.index))
    }

    func entry(for object: ObjectID, rights: Rights) -> ReferenceEntry {
        // Field by field: copying the whole record would retain and release its
        // references (ring, failure text) on every call that makes a reference.
        let i = Int(object.index)
        return ReferenceEntry(
            object: object, owner: objects.records[i].ownerElsewhere ?? id, kind: objects.records[i].kind,
            rights: rights,
            proximity: .localCore, maxWriteSize: objects.records[i].maxWriteSize,
            persistent: objects.records[i].persistent)
    }

    /// One of a task's references, checked to hold `rights`.
    @inline(__always)
    func referenceEntry(_ t: Int, _ ref: Ref, requiring rights: Rights = []) throws(CallError) -> ReferenceEntry {
        do throws(ReferenceError) { return try tasks[t].refs.entry(ref, requiring: rights) } catch {
            throw .reference(error)
        }
    }

    func insertRef(_ task: Int, _ entry: ReferenceEntry) throws(CallError) -> Ref {
        do throws(ReferenceError) { return try tasks[task].refs.insert(entry) } catch { throw .reference(error) }
    }
}

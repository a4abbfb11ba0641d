public import DIOS

// MARK: A blob across nodes

extension RemoteDemo {
    /// What the blob check found broken, in words.
    struct RuleBroken: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The blob's size: eight 64-bit words.
    static let blobSize = 64
    /// The longest message between the owner and the checker (a word, or a failure reason).
    static let wordSize = 240

    /// Fills the view with contents number `k`: eight words derived from `k`, so a
    /// stale or torn copy shows.
    static func fill(_ w: borrowing WriteTransaction, pattern k: UInt64) throws(CallError) {
        for j in 0..<8 { try w.store(k &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(j), toByteOffset: j * 8) }
    }

    /// Whether the view holds exactly contents number `k`.
    static func holds(_ r: borrowing ReadTransaction, pattern k: UInt64) -> Bool {
        guard r.count == blobSize else { return false }
        for j in 0..<8
        where r.uncheckedLoad(fromByteOffset: j * 8, as: UInt64.self) != k &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(j) {
            return false
        }
        return true
    }

    static func check(_ ok: Bool, _ broken: @autoclosure () -> String) throws(RuleBroken) {
        if !ok { throw RuleBroken(broken()) }
    }

    /// `body`'s answer, or what it was refused with, in words.
    static func attempt(_ what: String, _ body: () throws(CallError) -> Bool) throws(RuleBroken) -> Bool {
        do throws(CallError) { return try body() } catch { throw RuleBroken("\(what) was refused: \(error)") }
    }

    /// Commits contents number `k` to `blob` (a weak write unless `flags` says `.strong`).
    static func commit(_ task: TaskContext, _ blob: Ref, pattern k: UInt64, flags: Flags = []) throws(CallError) -> Bool
    {
        let w = try task.beginWrite(blob, size: blobSize, flags: flags)
        try fill(w, pattern: k)
        return task.endWrite(w)
    }

    /// What refuses a write to `blob` now (nil: it went through, and committed nothing new).
    static func writeRefusal(_ task: TaskContext, _ blob: Ref) -> CallError? {
        do throws(CallError) {
            let w = try task.beginWrite(blob, size: blobSize)
            _ = task.endWrite(w)
            return nil
        } catch { return error }
    }

    /// What refuses a strong read of `blob` now (nil: it was granted).
    static func strongReadRefusal(_ task: TaskContext, _ blob: Ref) -> CallError? {
        do throws(CallError) {
            let r = try task.beginRead(blob, flags: .strong)
            _ = task.endRead(r)
            return nil
        } catch { return error }
    }

    /// One word on a stream, waiting while the ring is full.
    static func tell(_ task: TaskContext, _ stream: Ref, _ word: String) async throws {
        guard try await task.write(Array(word.utf8.prefix(wordSize)), to: stream) else {
            throw RuleBroken("the stream to the other side was deleted")
        }
    }

    /// One word on a stream if it can go at once (a failure report: the other
    /// side may be gone).
    static func tellNow(_ task: TaskContext, _ stream: Ref, _ word: String) {
        guard let w = try? task.beginWrite(stream, size: min(word.utf8.count, wordSize)),
            (try? w.copy(from: word.utf8.prefix(wordSize))) != nil
        else { return }
        _ = task.endWrite(w)
    }

    /// Checks the consistency rules of DESIGN §2 on a blob held here, read and
    /// written by a task on `peer` (`dios.blob.checker`) through the proxy its
    /// node makes, in step with this side through a stream each way:
    ///
    /// 1. a weak read there sees the bytes committed here, and validates with
    ///    this node (its `endRead` is true);
    /// 2. a weak read there overlapped by a commit here fails validation, and a
    ///    fresh read sees the new bytes and validates;
    /// 3. while it holds a strong read, a writer here is held off (`.wouldBlock`)
    ///    and a weak reader here is not; once it ends, writing here works;
    /// 4. its weak write, while open, keeps a second writer here off (`.busy`) and
    ///    a strong reader (`.wouldBlock`); its commit lands here, with a newer
    ///    version (a weak read here overlapping it fails validation);
    /// 5. its strong write commits here too.
    ///
    /// Each side checks what it sees; a failure there comes back as a message, so
    /// the reason is reported here. Returns whether every rule held.
    public static func blob(on node: Node, with peer: InstanceID, say: @Sendable (String) -> Void) async throws -> Bool
    {
        let broken: String? = try await node.withTask(label: "blob demo") { task in
            let (_, blob) = try task.create(.blob(size: blobSize))
            guard try commit(task, blob, pattern: 1) else { return "the first write here did not commit" }
            let (_, toOwner) = try task.create(.stream(messageSize: wordSize, depth: 4))
            let (_, fromOwner) = try task.create(.stream(messageSize: wordSize, depth: 4))
            let (_, deadline) = try task.create(.timer(after: .seconds(30)))
            let toOwnerWriteEnd = try task.restrict(toOwner, to: [.write, .copy])
            let checker = try task.run(
                try task.lookup(blobChecker)[0], arguments: [blob, toOwnerWriteEnd, fromOwner], on: peer)
            do {
                try await checkAsOwner(
                    task, peer, blob: blob, toOwner: toOwner, fromOwner: fromOwner, checker: checker, deadline: deadline
                )
            } catch {
                tellNow(task, fromOwner, "abort: \(error)")
                return "\(error)"
            }
            guard try await task.select([checker, deadline]) == checker else {
                return "the task on \(peer) did not end within 30 s"
            }
            let r = try task.beginRead(checker)
            let status = try r.load(as: Int64.self)
            _ = task.endRead(r)
            return status == 0 ? nil : "the task on \(peer) ended with status \(status)"
        }
        if let broken {
            say("diosd: blob on \(peer): FAILED, \(broken)")
        } else {
            say(
                "diosd: blob on \(peer): consistency rules held (its weak read validated here, a commit here failed "
                    + "its overlapped read, its strong read held writers here off, its weak and strong writes "
                    + "committed here)"
            )
        }
        return broken == nil
    }

    /// The owner's side of `blob(on:with:say:)`.
    private static func checkAsOwner(
        _ task: TaskContext, _ peer: InstanceID, blob: Ref, toOwner: Ref, fromOwner: Ref, checker: Ref, deadline: Ref
    ) async throws {
        /// The next word from the task there, which must be `expected`.
        func hear(_ expected: String) async throws {
            let ready = try await task.select([toOwner, checker, deadline])
            try check(ready != deadline, "no word from the task on \(peer) within 30 s (\"\(expected)\" was due)")
            try check(ready != checker, "the task on \(peer) ended where \"\(expected)\" was due")
            let word = String(decoding: try await task.read(toOwner), as: UTF8.self)
            if word.hasPrefix("failed: ") {
                throw RuleBroken("the task on \(peer) found: \(word.dropFirst("failed: ".count))")
            }
            try check(word == expected, "the task on \(peer) said \"\(word)\" where \"\(expected)\" was due")
        }
        // 2. It reads; this commit overlaps its read.
        try await hear("reading")
        try check(
            try attempt("a write here") { () throws(CallError) in try commit(task, blob, pattern: 2) },
            "a write here did not commit")
        try await tell(task, fromOwner, "written")
        // 3. It holds a strong read: a writer here waits, a weak reader does not.
        try await hear("holding")
        let refused = writeRefusal(task, blob)
        try check(
            refused == .wouldBlock,
            "a write here \(refused.map { "was refused with \($0)" } ?? "went through") while the task on \(peer) "
                + "held a strong read (.wouldBlock was due)"
        )
        var r = try task.beginRead(blob)
        try check(holds(r, pattern: 2), "a weak read here under its strong read did not see the committed bytes")
        try check(task.endRead(r), "a weak read here under its strong read did not validate")
        try await tell(task, fromOwner, "held off")
        try await hear("released")
        try check(
            try attempt("a write here after its strong read ended") { () throws(CallError) in
                try commit(task, blob, pattern: 3)
            },
            "a write here after its strong read ended did not commit")
        // 4. A weak read here, open across its write: that write's commit must move the version on.
        let before = try task.beginRead(blob)
        try await tell(task, fromOwner, "written")
        try await hear("writing")
        let second = writeRefusal(task, blob)
        try check(
            second == .busy,
            "a write here \(second.map { "was refused with \($0)" } ?? "went through") while the task on \(peer) had "
                + "a write open (.busy was due)"
        )
        let strong = strongReadRefusal(task, blob)
        try check(
            strong == .wouldBlock,
            "a strong read here \(strong.map { "was refused with \($0)" } ?? "was granted") while the task on \(peer) "
                + "had a write open (.wouldBlock was due)"
        )
        try await tell(task, fromOwner, "go on")
        try await hear("wrote")
        try check(
            !task.endRead(before),
            "a weak read here validated across the commit of a write from \(peer): the version did not move on")
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 4), "after its write committed, a read here did not see its bytes")
        try check(task.endRead(r), "after its write committed, a read here did not validate")
        // Until it hears this, it does not go on to its strong write, which
        // would otherwise race the read just made (it did, once, in CI: the
        // checker's next write committed before this side's task ran).
        try await tell(task, fromOwner, "seen")
        // 5. Its strong write.
        try await hear("done")
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 5), "after its strong write committed, a read here did not see its bytes")
        try check(task.endRead(r), "after its strong write committed, a read here did not validate")
    }

    /// The checker's side of `blob(on:with:say:)`, on the node the blob was handed to.
    static func checkFromAfar(_ task: TaskContext, blob: Ref, toOwner: Ref, fromOwner: Ref) async throws {
        /// The next word from the owner, which must be `expected`.
        func hear(_ expected: String) async throws {
            let word = String(decoding: try await task.read(fromOwner), as: UTF8.self)
            try check(word == expected, "the owner said \"\(word)\" where \"\(expected)\" was due")
        }
        try check(try task.describe(blob).proximity == .remoteMemory, "the blob handed over is not a remote one here")
        // 1. A weak read sees the owner's committed bytes and validates with it.
        var r = try task.beginRead(blob)
        try check(holds(r, pattern: 1), "a weak read did not see the owner's committed bytes")
        try check(task.endRead(r), "a weak read with no write overlapping it did not validate with the owner")
        // 2. A weak read overlapped by a commit at the owner fails validation.
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 1), "a second weak read did not see the owner's bytes")
        try await tell(task, toOwner, "reading")
        try await hear("written")
        try check(!task.endRead(r), "a weak read overlapped by a commit at the owner validated")
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 2), "a weak read after the owner's commit did not see its bytes")
        try check(task.endRead(r), "a weak read after the owner's commit did not validate")
        // 3. A strong read holds the owner's writers off until it ends.
        r = try task.beginRead(blob, flags: .strong)
        try check(holds(r, pattern: 2), "a strong read did not see the owner's bytes")
        try await tell(task, toOwner, "holding")
        try await hear("held off")
        try check(task.endRead(r), "a strong read did not end cleanly")
        try await tell(task, toOwner, "released")
        try await hear("written")
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 3), "a weak read after the strong one did not see the owner's next commit")
        try check(task.endRead(r), "a weak read after the strong one did not validate")
        // 4. A weak write from here, open at the owner until it commits there.
        let w = try task.beginWrite(blob, size: blobSize)
        try fill(w, pattern: 4)
        try await tell(task, toOwner, "writing")
        try await hear("go on")
        try check(task.endWrite(w), "a write from here did not commit at the owner")
        try await tell(task, toOwner, "wrote")
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 4), "a read after this side's write did not see it")
        try check(task.endRead(r), "a read after this side's write did not validate")
        // 5. A strong write from here, once the owner has checked the last one.
        try await hear("seen")
        try check(
            try attempt("a strong write from here") { () throws(CallError) in
                try commit(task, blob, pattern: 5, flags: .strong)
            },
            "a strong write from here did not commit at the owner")
        r = try task.beginRead(blob)
        try check(holds(r, pattern: 5), "a read after this side's strong write did not see it")
        try check(task.endRead(r), "a read after this side's strong write did not validate")
        try await tell(task, toOwner, "done")
    }
}

import DIOSCore

extension KernelInstance {
    /// A summary of everything a call can change: each object's state and each
    /// task's table. Tests compare two of these to show a refused call changed nothing.
    package func stateFingerprint() -> [String] {
        checkThread()
        var out: [String] = []
        for i in objects.records.indices where objects.records[i].live {
            let r = objects.records[i]
            out.append(
                "o\(i)/\(r.generation) \(r.kind) v\(r.version) len\(r.length) sh\(r.sharedHolds) w\(r.writerOpen) "
                    + "x\(r.exclusive) rd\(r.readerOpen) open\(r.openTransactions) del\(r.deleted) "
                    + "q\(r.ring.map { "\($0.count)" } ?? "-") ready\(r.ready) dl\(r.deadline)")
        }
        for (i, t) in tasks.enumerated() where t.live {
            out.append("t\(i)/\(t.generation) p\(t.paused) s\(t.stopping) d\(t.delegated)")
            for (ref, e) in t.refs.references { out.append("  \(ref) \(e.object) \(e.rights) \(e.kind)") }
        }
        out.append("names \(names.count) free \(pool.buffersInUse) timers \(timers.count)")
        return out
    }
}

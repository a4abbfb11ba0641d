import DIOSTransport
import DIOSWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs one role over `transport`; returns the exit status.
func run<T: FrameTransport>(_ transport: T, _ o: Options, describe: () -> String) -> Int32 {
    let deadline = now() + UInt64(o.timeoutSeconds) * 1_000_000_000
    let retry = UInt64(o.retryMilliseconds) * 1_000_000
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: EthernetUDP.maxPayload, alignment: 8)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
    var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
    func idle() {
        switch o.idle {
        case .spin: break
        case .yield: sched_yield()
        case .sleep: nanosleep(&pause, nil)
        }
    }
    func expired() -> Bool { now() > deadline || stopRequested.load(ordering: .relaxed) }

    switch o.role {
    case .server?:
        // Echo each frame to its source. In exchange mode, check order and content.
        let checking = o.pingpong == nil
        var expected: UInt64 = 0
        var duplicates = 0, outOfOrder = 0, corrupt = 0, echoFailures = 0, frames = 0
        var doneAt: UInt64? = nil
        while !expired() {
            if let doneAt, now() - doneAt > 300_000_000 { break }  // linger for a lost DONE echo
            let n = transport.receive { frame, source in
                frames += 1
                guard let (seq, kind) = Exchange.header(frame) else {
                    corrupt += 1
                    return
                }
                if kind == Exchange.done {
                    if doneAt == nil { doneAt = now() }
                } else if checking {
                    guard Exchange.isIntact(frame) else {
                        corrupt += 1  // not echoed: the client resends
                        return
                    }
                    if seq == expected {
                        expected += 1
                    } else if seq < expected {
                        duplicates += 1  // a resend whose first copy got here: echo again
                    } else {
                        outOfOrder += 1
                    }
                }
                if !transport.send(frame, to: source) { echoFailures += 1 }
            }
            if n == 0 { idle() }
        }
        let ok = doneAt != nil && (!checking || (expected == UInt64(o.frames) && outOfOrder == 0 && corrupt == 0))
        say(
            "server: \(ok ? "ok" : "FAILED") frames_in=\(frames) in_order=\(expected) duplicates=\(duplicates) "
                + "out_of_order=\(outOfOrder) corrupt=\(corrupt) echo_failures=\(echoFailures) "
                + "done=\(doneAt != nil) \(describe())")
        return ok ? 0 : 1

    case .client?:
        guard let peer = o.peer else { return 2 }
        var retransmits = 0, stale = 0, corrupt = 0, sendRefusals = 0
        var timeouts = 0
        var rtts = [UInt64]()

        /// Sends `length` bytes of `buffer` and waits for the echo of `seq` (identical
        /// bytes), resending after `retry`. Returns the round trip of the copy that
        /// came back first, or nil at the deadline.
        func roundTrip(_ seq: UInt64, length: Int) -> UInt64? {
            let sent = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
            while !expired() {
                let start = now()  // the round trip includes the send (af_packet's is a system call)
                guard transport.send(sent, to: peer) else {
                    sendRefusals += 1  // TX ring full or link down: try again
                    idle()
                    continue
                }
                var matched = false
                while !matched && now() - start < retry {
                    let n = transport.receive { frame, _ in
                        guard let (echoSeq, _) = Exchange.header(frame), echoSeq == seq else {
                            stale += 1  // the echo of an earlier resend
                            return
                        }
                        if frame.count == sent.count, let a = frame.baseAddress, let b = sent.baseAddress,
                            memcmp(a, b, sent.count) == 0
                        {
                            matched = true
                        } else {
                            corrupt += 1
                        }
                    }
                    if n == 0 && !matched { idle() }
                }
                if matched { return now() - start }
                retransmits += 1
            }
            return nil
        }

        let started = now()
        var completed = 0
        if let count = o.pingpong {
            rtts.reserveCapacity(count)
            for i in 0..<(o.warmup + count) {
                let seq = UInt64(i)
                _ = Exchange.write(seq, kind: Exchange.data, length: o.size, into: buffer)
                guard let rtt = roundTrip(seq, length: o.size) else {
                    timeouts += 1
                    break
                }
                if i >= o.warmup { rtts.append(rtt) }
                completed += 1
            }
        } else {
            for i in 0..<o.frames {
                let seq = UInt64(i)
                let length = Exchange.write(seq, kind: Exchange.data, length: Exchange.size(seq), into: buffer)
                guard roundTrip(seq, length: length) != nil else {
                    timeouts += 1
                    break
                }
                completed += 1
            }
        }
        let elapsed = now() - started
        // Tell the server to finish; a few tries, since the DONE or its echo may be lost.
        let doneSeq = UInt64(o.pingpong.map { o.warmup + $0 } ?? o.frames)
        let doneLength = Exchange.write(doneSeq, kind: Exchange.done, length: 16, into: buffer)
        let doneEchoed = timeouts == 0 && roundTrip(doneSeq, length: doneLength) != nil
        let wanted = o.pingpong.map { o.warmup + $0 } ?? o.frames
        let ok = completed == wanted && corrupt == 0 && doneEchoed
        var line =
            "client: \(ok ? "ok" : "FAILED") frames=\(completed)/\(wanted) retransmits=\(retransmits) "
            + "stale_echoes=\(stale) corrupt=\(corrupt) send_refusals=\(sendRefusals) "
            + "done_echoed=\(doneEchoed) elapsed_ms=\(elapsed / 1_000_000) \(describe())"
        if o.pingpong != nil, !rtts.isEmpty {
            rtts.sort()
            func percentile(_ p: Double) -> UInt64 { rtts[min(rtts.count - 1, Int(Double(rtts.count) * p))] }
            let mean = rtts.reduce(0, +) / UInt64(rtts.count)
            line +=
                "\npingpong size=\(o.size) n=\(rtts.count) min_ns=\(rtts[0]) p50_ns=\(percentile(0.50)) "
                + "p99_ns=\(percentile(0.99)) p999_ns=\(percentile(0.999)) max_ns=\(rtts[rtts.count - 1]) "
                + "mean_ns=\(mean)"
        }
        say(line)
        return ok ? 0 : 1

    case nil:
        return 2
    }
}

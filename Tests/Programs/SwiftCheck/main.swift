// A DIOS task process written in Swift against the DIOSTaskProcess library,
// as a user's Swift program would be: `dios-swift-check MODE ARGS...`, its
// references delegated by `run`. Exit status 0 means every check it made held.
import DIOSCore
import DIOSTaskProcess

#if canImport(Glibc)
import Glibc
#endif

func checksum(_ seq: UInt64) -> UInt64 { seq &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03 }

func fail(_ what: String) -> Never {
    let line = Array("dios-swift-check: \(what)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// Streams `count` numbered, checksummed messages, each written in place.
func stream(_ task: ProcessTask, _ count: UInt64) throws(CallError) {
    let out = try task.delegated()[0]
    var i: UInt64 = 0
    while i < count {
        let w: ProcessWriteTransaction
        do { w = try task.beginWrite(out, size: 16) } catch .wouldBlock {
            _ = try task.select([out], flags: .writable)
            continue
        }
        try w.store(i)
        try w.store(checksum(i), toByteOffset: 8)
        guard task.endWrite(w) else { fail("message \(i) was not committed") }
        i += 1
    }
    print("wrote \(count) messages")
}

/// The blob rules as a Swift process sees them: a committed write reads back;
/// a weak read overlapped by a commit is inconsistent; an abandoned write
/// publishes nothing.
func blob(_ task: ProcessTask) throws(CallError) {
    let b = try task.delegated()[0]
    let pattern = (0..<64).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
    guard try task.write(pattern, to: b) else { fail("the write was not committed") }
    guard try task.read(b) == pattern else { fail("the blob does not read back what was written") }
    let r = try task.beginRead(b)
    let w = try task.beginWrite(b, size: 64)
    w.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0xAB) }
    guard task.endWrite(w) else { fail("the second write was not committed") }
    if task.endRead(r) { fail("a weak read overlapped by a commit said consistent") }
    do {
        let dropped = try task.beginWrite(b, size: 64)
        dropped.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0xCD) }
        _ = consume dropped  // abandoned: nothing published
    }
    guard try task.read(b).first == 0xAB else { fail("an abandoned write was published") }
    print("blob rules hold")
}

guard let task = ProcessTask.current else { fail("not started as a DIOS task") }
let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : ""
let n = arguments.count > 2 ? UInt64(arguments[2]) ?? 0 : 0
do {
    switch mode {
    case "stream": try stream(task, n)
    case "blob": try blob(task)
    case "trusted": exit(task.isTrusted && task.arena != nil ? 0 : 1)
    default: fail("no mode \(mode)")
    }
} catch {
    fail("\(mode): \(error)")
}

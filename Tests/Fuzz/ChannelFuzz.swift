// libFuzzer entry point for what a task process writes into its channel: the
// submission decoder (`SubmissionEntry` from 64 bytes, then
// `ChannelRequest.decode`). Built by Tests/Fuzz/run.sh with
// `swiftc -sanitize=fuzzer,address`, compiled together with the sources of
// DIOSCore and DIOSChannel as one module. An input is read as a run of
// entries, as a ring holds them; every one must decode or be refused with a
// typed error, and what decodes must lie inside the window.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChannel(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var offset = 0
    while offset + ChannelLayout.submissionSize <= size {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + ChannelLayout.submissionSize])
        offset += ChannelLayout.submissionSize
        guard let entry = SubmissionEntry(bytes: slice) else { preconditionFailure("64 bytes are an entry") }
        guard let request = try? ChannelRequest.decode(entry) else { continue }
        for range in ranges(request) {
            precondition(range.offset >= 0 && range.count >= 0)
            precondition(range.offset + range.count <= ChannelLayout.windowSize)
        }
    }
    return 0
}

/// Every window span a request names.
func ranges(_ r: ChannelRequest) -> [WindowRange] {
    switch r {
    case .create(_, _, let out, let input): [out] + (input.map { [$0] } ?? [])
    case .lookup(let name, _, let out, _): [name, out]
    case .beginRead(_, _, let w), .beginWrite(_, _, _, let w), .read(_, _, let w, _), .write(_, _, let w, _): [w]
    case .run(_, let a, _, _), .select(let a, _), .delegated(let a, _): [a]
    case .copy(_, let a, _, _, let out): [a, out]
    case .endRead, .endWrite, .abandon, .pause, .delete, .restrict, .describe, .hello, .mapStream, .unmapStream: []
    }
}

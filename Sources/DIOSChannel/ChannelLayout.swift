/// The channel's layout, as `dios_channel.h` defines it for libdios (a test
/// checks the two agree): where the rings and the window lie, and how big
/// each part is. Everything here is a plain number, so the decoder and the
/// fuzzer need no C.
public enum ChannelLayout {
    public static let magic: UInt64 = 0x4449_4F53_4348_4E01
    public static let ringEntries: UInt32 = 64
    public static let submissionSize = 64
    public static let completionSize = 32
    public static let submissionOffset = 4096
    public static let completionOffset = submissionOffset + Int(ringEntries) * submissionSize
    public static let windowOffset = 1 << 16
    /// The largest view one transaction returns (a stream message or a blob
    /// of the largest pool buffer): one window area.
    public static let windowArea = 2 << 20
    public static let windowAreas = 8
    public static let windowSize = windowArea * windowAreas
    public static let size = windowOffset + windowSize
    /// The most references one call passes through the window.
    public static let maxReferencesPerCall = 1024

    /// Byte offsets of the header's words.
    public enum Header {
        public static let magic = 0
        public static let ringEntries = 8
        public static let windowSize = 12
        public static let windowOffset = 16
        public static let pid = 20
        public static let trusted = 24
        public static let instanceCPU = 28
        public static let submissionTail = 64
        public static let submissionHead = 128
        public static let completionTail = 192
        public static let completionHead = 256
        public static let processSleeping = 260
        public static let instanceSleeping = 320
    }
}

/// The operations a submission names (`enum dios_op`).
public enum ChannelOperation: UInt16, Sendable, CaseIterable {
    case create = 1, lookup, beginRead, endRead, beginWrite, endWrite, run, pause, copy, delete, select
    case abandon, restrict, describe, delegated, hello
    /// A whole write or read in one entry: begin, copy, end.
    case write, read
    /// A trusted process takes a side of a local stream's ring, and gives it back.
    case mapStream, unmapStream
}

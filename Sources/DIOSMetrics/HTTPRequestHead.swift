import DIOSHost

/// The head of an HTTP/1 request (its request line; the header fields are
/// read and skipped), as the metrics endpoint needs it.
struct HTTPRequestHead: Equatable {
    var method: String
    /// The target without its query.
    var path: String

    enum Outcome: Equatable {
        case head(HTTPRequestHead)
        /// No request line of the form `METHOD TARGET HTTP/1.x`.
        case malformed
        /// No blank line within the limit.
        case tooLong
        /// Not all of it within the deadline (or the client left first).
        case late
    }

    /// Parses a whole head (`bytes` up to and including its blank line).
    static func parse(_ bytes: some Collection<UInt8>) -> HTTPRequestHead? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false).first else {
            return nil
        }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isLetter && $0.isUppercase }),
            parts[1].hasPrefix("/"), parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0"
        else { return nil }
        let target = parts[1]
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return HTTPRequestHead(method: String(parts[0]), path: String(path))
    }

    /// The index just past the head's blank line in `bytes`, searching from
    /// `from`, if it is there.
    static func end(of bytes: [UInt8], from: Int = 0) -> Int? {
        let start = max(3, from + 3)
        guard start < bytes.count else { return nil }
        for i in start..<bytes.count
        where bytes[i] == 10 && bytes[i - 1] == 13 && bytes[i - 2] == 10 && bytes[i - 3] == 13 {
            return i + 1
        }
        return nil
    }

    /// Reads a head from `client`: at most `limit` bytes, all within `deadline`.
    static func read(_ client: Int32, limit: Int, deadline: Duration) -> Outcome {
        switch BoundedServer.read(client, limit: limit, deadline: deadline, lookBack: 3, end: { end(of: $0, from: $1) })
        {
        case .complete(let bytes): parse(bytes).map(Outcome.head) ?? .malformed
        case .tooLong: .tooLong
        case .closed, .late: .late
        }
    }
}

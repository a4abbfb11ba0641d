public import DIOSCore

/// How a session numbers, paces and gives up.
public struct SessionConfiguration: Sendable, Equatable {
    /// Frames in flight (sent, not yet acknowledged), and frames a receiver holds
    /// that it could not deliver yet.
    public var window: Int
    /// A frame not acknowledged this long after it was sent is sent again.
    public var retransmitTimeout: Duration
    /// A session that sent nothing for this long sends a heartbeat.
    public var heartbeatInterval: Duration
    /// A peer heard nothing from for this long is declared failed.
    public var failureTimeout: Duration
    /// The largest frame the transport carries (header included).
    public var maxFrameSize: Int
    /// The largest message a session carries (fragmented into frames).
    public var maxMessageSize: Int
    /// How long an acknowledgement waits for a data frame to carry it.
    public var ackDelay: Duration

    public init(
        window: Int = 128, retransmitTimeout: Duration = .milliseconds(2),
        heartbeatInterval: Duration = .milliseconds(20),
        failureTimeout: Duration = .seconds(1), maxFrameSize: Int = 1472, maxMessageSize: Int = 65_536,
        ackDelay: Duration = .microseconds(50)
    ) {
        self.ackDelay = ackDelay
        self.window = window
        self.retransmitTimeout = retransmitTimeout
        self.heartbeatInterval = heartbeatInterval
        self.failureTimeout = failureTimeout
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes each frame carries after its payload: the authentication
    /// trailer when frames are protected (`WireSecurity.trailer`), set by the
    /// endpoint.
    public var frameTrailer = 0

    /// Payload bytes one frame carries.
    public var maxFragment: Int { maxFrameSize - FrameHeader.size - frameTrailer }
}

/// A configuration's times in the sessions' clock (monotonic nanoseconds),
/// converted once when a session is made: its timers compare them with the
/// clock on every poll.
struct SessionTimes {
    let retransmit: UInt64
    let heartbeat: UInt64
    let failure: UInt64
    let ackDelay: UInt64

    init(_ c: SessionConfiguration) {
        retransmit = c.retransmitTimeout.nanoseconds
        heartbeat = c.heartbeatInterval.nanoseconds
        failure = c.failureTimeout.nanoseconds
        ackDelay = c.ackDelay.nanoseconds
    }
}

/// Why a peer was declared failed.
public enum PeerFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing heard from it within the failure timeout.
    case timeout(after: Duration)
    /// It came back as a new incarnation (restarted, or it declared us failed):
    /// whatever was in flight in the old session is gone.
    case restarted
    /// It broke the protocol (a message over the size limit, a fragment out of place).
    case protocolViolation(String)
    /// It said it was stopping (`RemoteMessage.leaving`).
    case left

    public var description: String {
        switch self {
        case .timeout(let after):
            "no answer within \(after.nanoseconds / 1_000_000) ms"
        case .restarted: "the peer began a new session (it restarted, or had given this instance up)"
        case .protocolViolation(let s): "protocol violation: \(s)"
        case .left: "the peer stopped"
        }
    }
}

/// Why a message could not be queued.
public enum SessionError: Error, Equatable, Sendable {
    /// Larger than the configured maximum message size.
    case messageTooLarge(Int, maximum: Int)
    /// No such peer in the endpoint's table.
    case unknownPeer(InstanceID)
}

/// A change in a peer's reachability, reported by the endpoint.
public enum PeerChange: Equatable, Sendable {
    /// The first frame of a new session arrived: the peer is reachable.
    case up
    /// The session failed; every message in flight in it is lost, and whatever
    /// depended on the peer must be told.
    case down(PeerFailure)
}

/// What `Session.lendFrame` gives.
public enum FrameLoan: Equatable, Sendable {
    case lent(TransportFrame)
    /// As many frames as the window holds are lent or waiting: wait for room.
    case full
    /// None to lend (the transport copies, none is free, or the peer has not
    /// answered yet): send a copy.
    case none
}

/// A session's running totals (for `dios status` and the tests).
public struct SessionCounters: Sendable, Equatable {
    public var messagesSent: UInt64 = 0
    public var messagesDelivered: UInt64 = 0
    public var framesSent: UInt64 = 0
    public var framesReceived: UInt64 = 0
    public var controlFramesSent: UInt64 = 0
    public var retransmits: UInt64 = 0
    /// Of `retransmits`, those sent on three duplicate acknowledgements
    /// rather than on the timer.
    public var fastRetransmits: UInt64 = 0
    /// Messages sent from the transport frame they were written in (no copy).
    public var sentInPlace: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var beyondCredit: UInt64 = 0
    public var staleFrames: UInt64 = 0
    public var resets: UInt64 = 0
}

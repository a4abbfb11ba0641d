/// What a polling loop does when a turn finds no work.
public enum IdlePolicy: Sendable, Equatable, CustomStringConvertible {
    /// Spin forever: the lowest latency, one core burnt per instance.
    case busy
    /// Spin for `spins` empty turns, then `sched_yield` for `yields` more, then
    /// sleep on the instance's eventfd until work arrives, the next timer is due,
    /// or `maxSleep` passes. Usable on a 2-core laptop or CI box.
    case adaptive(spins: Int, yields: Int, maxSleep: Duration)

    /// The adaptive policy's default spins, yields and longest sleep.
    public static let adaptiveDefaults = (spins: 2_000, yields: 200, maxSleep: Duration.milliseconds(50))

    /// Adaptive with defaults that keep wake-up latency low and idle cost near zero.
    public static let adaptive = IdlePolicy.adaptive(
        spins: adaptiveDefaults.spins, yields: adaptiveDefaults.yields, maxSleep: adaptiveDefaults.maxSleep)

    public var description: String {
        switch self {
        case .busy: "busy"
        case .adaptive(let s, let y, let m): "adaptive(spins: \(s), yields: \(y), maxSleep: \(m))"
        }
    }
}

public import DIOSCore

/// The rules that keep exactly one scheduler running in a connected cluster
/// (DESIGN §7), apart from any I/O so that the node's `Scheduler` and the
/// cluster simulation decide alike.
///
/// Every node runs a bootstrapper. It starts a scheduler when `lookup` finds
/// none and its node is the lowest-numbered reachable one. Nodes that booted
/// apart (or sides of a healed partition) may each have started one; a
/// scheduler that sees another on a lower instance steps down. When the node
/// running it fails, membership drops its name from `lookup`, and the lowest
/// surviving node starts another.
public enum SchedulerElection {
    /// The scheduler's well-known name.
    public static let name = Name.wellKnown("dios.scheduler")

    /// Whether the bootstrapper on `me` starts a scheduler now. `owners`: the
    /// instances holding one, as `lookup` sees them; `reachable`: the membership
    /// view (this node's instances and those of other nodes with a session up);
    /// `running`: whether one it started still runs.
    public static func shouldStart(me: InstanceID, owners: [InstanceID], reachable: [InstanceID], running: Bool) -> Bool
    {
        guard !running, owners.isEmpty else { return false }
        let lowest = reachable.map(\.node).min() ?? me.node
        return me.node <= lowest
    }

    /// Whether a scheduler on `me` steps down: another runs on a lower instance.
    public static func shouldStepDown(me: InstanceID, owners: [InstanceID]) -> Bool {
        owners.contains { $0 < me }
    }
}

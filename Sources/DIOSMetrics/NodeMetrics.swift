public import DIOS
public import Prometheus
import Synchronization

/// A node's instances' counters as Prometheus metrics, in a swift-prometheus
/// registry: each instance's values labelled `dios_instance="N.K"` (not
/// `instance`, which Prometheus gives the scraped target).
///
/// A scrape reads each instance's `CounterBoard` (words the instance stores
/// on its own thread; see there) and never sends anything to an instance, so
/// it answers as fast while every instance is saturated as while all sleep.
/// The registry may be the one the process bootstraps swift-metrics with
/// (`PrometheusMetricsFactory`): what libraries count through swift-metrics
/// is then served with the node's own metrics.
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let boards: [CounterBoard]
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var counters: [[Counter?]]
        var gauges: [[Gauge?]]
        /// Each counter's value when last read (a registry counter only grows by increments).
        var last: [[UInt64]]
    }

    public init(node: Node, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        boards = node.instances.map(\.board)
        let fields = CounterBoard.Field.allCases
        var counters: [[Counter?]] = []
        var gauges: [[Gauge?]] = []
        for instance in node.instances {
            let labels = [("dios_instance", "\(instance.id)")]
            counters.append(
                fields.map { f in
                    f.isGauge ? nil : registry.makeCounter(descriptor: Self.descriptor(of: f), labels: labels)
                })
            gauges.append(
                fields.map { f in
                    f.isGauge ? registry.makeGauge(descriptor: Self.descriptor(of: f), labels: labels) : nil
                })
        }
        state = Mutex(
            State(
                counters: counters, gauges: gauges,
                last: Array(repeating: Array(repeating: 0, count: fields.count), count: boards.count)))
    }

    /// Brings the registry up to the instances' boards and renders it in
    /// Prometheus's text format (version 0.0.4).
    public func scrape() -> [UInt8] {
        state.withLock { s in
            for (i, board) in boards.enumerated() {
                for f in CounterBoard.Field.allCases {
                    let value = board.load(f)
                    if let gauge = s.gauges[i][f.rawValue] {
                        gauge.set(Int64(clamping: value))
                    } else if let counter = s.counters[i][f.rawValue], value > s.last[i][f.rawValue] {
                        counter.increment(by: Int64(clamping: value - s.last[i][f.rawValue]))
                        s.last[i][f.rawValue] = value
                    }
                }
            }
        }
        return registry.emitToBuffer()
    }

    /// The metric's name (`dios_` and its unit or `_total`) and help line.
    static func descriptor(of field: CounterBoard.Field) -> MetricNameDescriptor {
        let (name, unit, help) = Self.names(field)
        return MetricNameDescriptor(namespace: "dios", metricName: name, unitName: unit, helpText: help)
    }

    static func names(_ field: CounterBoard.Field) -> (String, String, String) {
        switch field {
        case .calls: ("calls", "total", "Calls made by tasks on the instance.")
        case .messagesIn: ("messages_in", "total", "Stream messages read by tasks on the instance.")
        case .messagesOut: ("messages_out", "total", "Stream messages written by tasks on the instance.")
        case .readInPlace:
            ("messages_read_in_place", "total", "Messages from other nodes left in the frame they arrived in.")
        case .polls: ("polls", "total", "Turns of the instance's polling loop.")
        case .idlePolls: ("idle_polls", "total", "Turns that found nothing to do.")
        case .tasksStarted: ("tasks_started", "total", "Tasks started on the instance.")
        case .tasksExited: ("tasks_exited", "total", "Tasks that ended on the instance.")
        case .timersFired: ("timers_fired", "total", "Timer objects that fired.")
        case .selectSuspends: ("select_suspends", "total", "select calls that suspended their task.")
        case .remoteRefused:
            ("remote_refused", "total", "Messages from other nodes refused (malformed, or for a gone stream).")
        case .namesRelayed: ("names_relayed", "total", "Name-service deltas relayed to other nodes.")
        case .peersUp: ("peers_up", "total", "Sessions with instances of other nodes that came up.")
        case .peersDown: ("peers_down", "total", "Sessions with instances of other nodes that failed.")
        case .framesSent: ("frames_sent", "total", "Frames sent to other nodes, resent ones included.")
        case .framesReceived: ("frames_received", "total", "Frames received from other nodes.")
        case .framesResent: ("frames_resent", "total", "Frames sent again after no acknowledgement came.")
        case .framesDuplicate: ("frames_duplicate", "total", "Frames received twice and dropped.")
        case .framesForged: ("frames_forged", "total", "Frames refused: their authentication tag was wrong.")
        case .framesReplayed: ("frames_replayed", "total", "Frames refused: a counter already taken, or too old.")
        case .framesFromStrangers:
            ("frames_from_strangers", "total", "Frames refused: from an instance not in the cluster.")
        case .framesMalformed: ("frames_malformed", "total", "Frames refused: too short or a bad header.")
        case .tasksLive: ("tasks", "live", "Tasks on the instance now.")
        case .taskProcesses: ("task_processes", "live", "Task processes whose channels the instance serves.")
        case .objectsLive: ("objects", "live", "Objects held by the instance now.")
        case .peersReachable: ("peers", "reachable", "Instances of other nodes reachable now.")
        case .nameInsertions:
            ("name_replica_insertions", "", "Insertions the name-service replica keeps (removed ones too).")
        case .nameTombstones: ("name_replica_tombstones", "", "Removals the name-service replica keeps.")
        }
    }
}

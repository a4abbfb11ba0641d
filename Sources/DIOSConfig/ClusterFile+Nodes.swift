import DIOSCore
import DIOSWire
import Foundation
import Logging
import Yams

// A cluster file's nodes and veth pairs, checked one by one and against each
// other as `parse` reads them.
extension ClusterFile {
    static func node(_ n: RawClusterFile.RawNode) throws(ConfigError) -> NodeEntry {
        guard let address = PeerAddress(n.address, port: n.port) else {
            throw .invalid("node \(n.id): address must be dotted IPv4, got \(n.address)")
        }
        guard ["udp", "dpdk"].contains(n.transport ?? "udp") else {
            throw .invalid("node \(n.id): transport must be udp or dpdk, got \(n.transport ?? "")")
        }
        var entry = NodeEntry(id: n.id, address: address)
        entry.transport = n.transport ?? "udp"
        if let cores = n.cores { entry.cores = try Setting.cores(cores, key: "node \(n.id): cores") }
        guard Int(n.port) + entry.cores.count <= 65_536, n.port > 0 else {
            throw .invalid("node \(n.id): ports \(n.port)+\(entry.cores.count) out of range")
        }
        if let pin = n.pin { entry.pin = pin }
        if let a = n.arena_mib {
            guard a > 0 else { throw .invalid("node \(n.id): arena_mib must be positive") }
            entry.arenaMiB = a
        }
        entry.controlSocket = n.control_socket
        if let mode = n.control_socket_mode { entry.controlSocketMode = try Setting.socketMode(mode) }
        if let metrics = n.metrics {
            entry.metricsListen = try Setting.listenAddress(metrics.listen, key: "node \(n.id): metrics.listen")
        }
        if let text = n.mac {
            guard let mac = parseMAC(text), mac[0] & 1 == 0, mac != [0, 0, 0, 0, 0, 0] else {
                throw .invalid(
                    "node \(n.id): mac must be a unicast Ethernet address like 02:00:00:00:00:01, got \(text)")
            }
            entry.mac = mac
        }
        if let netns = n.netns {
            guard !netns.isEmpty, netns.count <= 64, netns.allSatisfy(isNameCharacter), netns != ".", netns != ".."
            else {
                throw .invalid("node \(n.id): netns must be 1 to 64 letters, digits, '-', '_' or '.', got \(netns)")
            }
            entry.netns = netns
        }
        if let iface = n.iface {
            guard !iface.isEmpty, iface.count <= 15, iface.allSatisfy(isNameCharacter), iface != "lo" else {
                throw .invalid(
                    "node \(n.id): iface must be an interface name of 1 to 15 letters, digits, '-', '_' or '.', got "
                        + "\(iface)"
                )
            }
            guard entry.netns != nil else {
                throw .invalid(
                    "node \(n.id): iface \(iface) needs a netns (dios cluster up creates the interface in the node's "
                        + "namespace)"
                )
            }
            entry.iface = iface
        }
        if entry.transport == "dpdk" {
            var vdev: String
            if let given = n.dpdk?.vdev {
                vdev = given
            } else if let iface = entry.iface {
                vdev = "net_af_packet0,iface=\(iface)"
            } else {
                throw .invalid(
                    "node \(n.id): transport dpdk needs dpdk.vdev (e.g. net_memif0,role=server,socket=/tmp/x.sock), "
                        + "or an iface for af_packet"
                )
            }
            let settings = DPDKSettings(vdev: vdev, ealArguments: n.dpdk?.eal_args ?? [])
            let fields = vdev.split(separator: ",", omittingEmptySubsequences: false)
            guard settings.device.hasPrefix("net_"), settings.device.count > 4,
                settings.device.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
                !vdev.contains(where: \.isWhitespace),
                fields.dropFirst().allSatisfy({ $0.contains("=") && !$0.hasPrefix("=") })
            else {
                throw .invalid(
                    "node \(n.id): dpdk.vdev must be a device like net_memif0 or net_af_packet0 and key=value "
                        + "options, got \(vdev)"
                )
            }
            if settings.driver == "af_packet" || settings.driver == "af_xdp" {
                guard let iface = settings.options["iface"] else {
                    throw .invalid("node \(n.id): dpdk.vdev \(vdev) needs iface=")
                }
                if let own = entry.iface, own != iface {
                    throw .invalid("node \(n.id): dpdk.vdev uses iface \(iface) but the node's iface is \(own)")
                }
                if settings.options["mac"] != nil {
                    throw .invalid(
                        "node \(n.id): \(settings.driver) takes its interface's MAC; set the node's mac, not mac= in "
                            + "dpdk.vdev"
                    )
                }
            }
            if settings.driver == "af_xdp" && entry.cores.count > 1 {
                throw .invalid(
                    "node \(n.id): an af_xdp node runs one instance so far (one AF_XDP socket, on queue 0), not "
                        + "\(entry.cores.count): DPDK 22.11's af_xdp takes its queues from the interface's combined "
                        + "channels, of which a veth has none; use af_packet for more"
                )
            }
            if settings.driver == "af_packet" {
                // A queue pair (socket) per instance.
                if let qpairs = settings.options["qpairs"] {
                    guard qpairs == "\(entry.cores.count)" else {
                        throw .invalid(
                            "node \(n.id): dpdk.vdev says qpairs=\(qpairs), the node runs \(entry.cores.count) "
                                + "instance(s)"
                        )
                    }
                } else if entry.cores.count > 1 {
                    vdev += ",qpairs=\(entry.cores.count)"
                }
            }
            if let given = settings.options["mac"] {
                guard let bytes = parseMAC(given), bytes == entry.mac else {
                    throw .invalid(
                        "node \(n.id): dpdk.vdev says mac=\(given), the node's mac is \(entry.macText ?? "not set")")
                }
            }
            let reserved = [
                "--file-prefix", "--vdev", "-l", "--lcores", "-c", "--main-lcore", "--proc-type", "--in-memory",
                "--no-shconf",
            ]
            for argument in settings.ealArguments {
                if let name = reserved.first(where: { argument == $0 || argument.hasPrefix($0 + "=") }) {
                    throw .invalid(
                        "node \(n.id): dpdk.eal_args must not set \(name): diosd sets it (see ClusterFile.ealArguments)"
                    )
                }
            }
            entry.dpdk = DPDKSettings(vdev: vdev, ealArguments: settings.ealArguments)
        } else if n.dpdk != nil {
            throw .invalid("node \(n.id): a dpdk mapping on a \(entry.transport) node (set transport: dpdk)")
        }
        return entry
    }

    static func vethPairs(_ raw: [[UInt16]], nodes: [NodeEntry]) throws(ConfigError) -> [VethPair] {
        var pairs: [VethPair] = []
        var linked: Set<UInt16> = []
        for ends in raw {
            guard ends.count == 2, ends[0] != ends[1] else {
                throw .invalid("veth: each pair names two different nodes, like [0, 1], got \(ends)")
            }
            for id in ends {
                guard let n = nodes.first(where: { $0.id == id }) else { throw .invalid("veth \(ends): no node \(id)") }
                guard n.netns != nil, n.iface != nil, n.mac != nil else {
                    throw .invalid("veth \(ends): node \(id) needs netns, iface and mac (its end of the pair)")
                }
                guard linked.insert(id).inserted else {
                    throw .invalid("veth \(ends): node \(id) is on another veth pair already (one interface per node)")
                }
            }
            let a = nodes.first { $0.id == ends[0] }!, b = nodes.first { $0.id == ends[1] }!
            guard a.netns != b.netns else {
                throw .invalid("veth \(ends): both ends are in namespace \(a.netns!); a veth pair joins two namespaces")
            }
            pairs.append(VethPair(a: ends[0], b: ends[1]))
        }
        for n in nodes where n.iface != nil && !linked.contains(n.id) {
            throw .invalid("node \(n.id): iface \(n.iface!) is on no veth pair (add [\(n.id), PEER] to veth)")
        }
        var ifaces: Set<[String]> = []
        for n in nodes {
            if let netns = n.netns, let iface = n.iface, !ifaces.insert([netns, iface]).inserted {
                throw .invalid("node \(n.id): iface \(iface) in \(netns) is another node's too")
            }
        }
        return pairs
    }

    /// A DPDK node resolves nothing: every node needs a MAC and an address of its own.
    static func checkDPDK(_ nodes: [NodeEntry]) throws(ConfigError) {
        guard let dpdk = nodes.first(where: { $0.transport == "dpdk" }) else { return }
        for n in nodes where n.mac == nil {
            throw .invalid(
                "node \(n.id): needs a mac: node \(dpdk.id) uses DPDK, whose neighbour table maps every peer's "
                    + "address to its MAC"
            )
        }
        var owners: [UInt32: UInt16] = [:]
        var macs: [[UInt8]: UInt16] = [:]
        for n in nodes {
            if let other = owners.updateValue(n.id, forKey: n.address.ipv4) {
                throw .invalid(
                    "node \(n.id): address \(n.address.ipv4Text) is node \(other)'s too; with DPDK nodes every node "
                        + "needs an address of its own (neighbour tables map addresses to MACs)"
                )
            }
            if let mac = n.mac, let other = macs.updateValue(n.id, forKey: mac) {
                throw .invalid("node \(n.id): mac \(n.macText!) is node \(other)'s too")
            }
        }
        // memif's sockets are abstract, so per network namespace, unless socket-abstract=no.
        var memif: [String: NodeEntry] = [:]
        for n in nodes {
            guard let d = n.dpdk, d.driver == "memif", d.options["socket-abstract"] != "no" else { continue }
            let socket = d.options["socket"] ?? "/run/memif.sock"
            if let other = memif.updateValue(n, forKey: socket), other.netns != n.netns {
                throw .invalid(
                    "node \(n.id): its memif socket \(socket) is abstract, so only nodes in one namespace share it "
                        + "(node \(other.id) is in \(other.netns ?? "the host's")); add socket-abstract=no or move "
                        + "them together"
                )
            }
        }
    }
}

import DIOSWire

/// What a cluster needs from this machine beyond its processes: the network
/// namespaces its nodes run in, the veth pairs between them (with the nodes'
/// MACs, and for a UDP node its address, a route and a neighbour entry for its
/// peer), and for a DPDK node the EAL's arguments and what the EAL leaves
/// behind, as plain values: DIOSHost runs them. `dios cluster up/down` and the
/// multi-process tests use these.
extension ClusterFile {
    /// The network namespaces the nodes run in, each once, in node order. They
    /// belong to the cluster: `dios cluster up` creates them, `down` deletes them.
    public var namespaces: [String] {
        var seen: Set<String> = []
        return nodes.compactMap(\.netns).filter { seen.insert($0).inserted }
    }

    /// The EAL's `--file-prefix` for node `id`: its hugepage files and runtime
    /// directory (`/var/run/dpdk/PREFIX`) are named after it.
    public func dpdkFilePrefix(_ id: UInt16) -> String { "dios-dpdk-\(name)-\(id)" }

    /// The EAL's arguments for DPDK node `id` (argv[0] first): its own file
    /// prefix, no PCI scan, IOVA as virtual addresses (virtual devices do no
    /// DMA, and some refuse to start where the EAL would pick physical ones:
    /// on a machine without an IOMMU whose page map it can read, say),
    /// hugepage files unlinked at once (none survive a
    /// crash), the main lcore floating over `cpus` (the EAL's thread only
    /// boots; the instance threads register themselves and poll), the node's
    /// device (a memif port gets the node's `mac=`), then the file's `eal_args`.
    ///
    /// - Parameter cpus: a CPU list for `--lcores 0@(cpus)`, e.g. "0-1": the CPUs the process may use.
    public func ealArguments(for id: UInt16, cpus: String) -> [String]? {
        guard let n = node(id), let d = n.dpdk else { return nil }
        var vdev = d.vdev
        if d.driver == "memif", d.options["mac"] == nil, let mac = n.macText { vdev += ",mac=\(mac)" }
        return [
            "diosd", "--file-prefix", dpdkFilePrefix(id), "--no-pci", "--iova-mode=va", "--huge-unlink", "--lcores",
            "0@(\(cpus))",
            "--vdev", vdev,
        ] + d.ealArguments
    }

    /// Node `id`'s neighbour table: every other node's IPv4 address (host order) → its MAC.
    public func neighbours(of id: UInt16) -> [UInt32: [UInt8]] {
        var table: [UInt32: [UInt8]] = [:]
        for n in nodes where n.id != id {
            if let mac = n.mac { table[n.address.ipv4] = mac }
        }
        return table
    }

    /// The `ip` commands (argument lists, without `ip`) that make the cluster's
    /// network, in order: its namespaces (loopback up), then each veth pair,
    /// created straight into the two namespaces with the nodes' MACs and brought
    /// up. A UDP node's end also gets its address (/32), a route to the node at
    /// the other end and a permanent neighbour entry for it, so its kernel sends
    /// to the peer's MAC without asking (a DPDK node answers ARP too). A DPDK
    /// node's end gets no address: its kernel leaves the node's traffic alone.
    public var networkSetup: [[String]] {
        var commands: [[String]] = []
        for ns in namespaces {
            commands.append(["netns", "add", ns])
            commands.append(["-n", ns, "link", "set", "lo", "up"])
        }
        for pair in veth {
            guard let a = node(pair.a), let b = node(pair.b), let nsA = a.netns, let nsB = b.netns,
                let ifA = a.iface, let ifB = b.iface, let macA = a.macText, let macB = b.macText
            else { continue }  // parse() guarantees all of these
            commands.append([
                "link", "add", ifA, "address", macA, "netns", nsA, "type", "veth",
                "peer", "name", ifB, "address", macB, "netns", nsB,
            ])
            for (end, other) in [(a, b), (b, a)] {
                let ns = end.netns!, iface = end.iface!
                commands.append(["-n", ns, "link", "set", iface, "up"])
                guard end.transport == "udp" else { continue }
                commands.append(["-n", ns, "addr", "add", "\(end.address.ipv4Text)/32", "dev", iface])
                commands.append(["-n", ns, "route", "add", "\(other.address.ipv4Text)/32", "dev", iface])
                commands.append([
                    "-n", ns, "neigh", "replace", other.address.ipv4Text, "lladdr", other.macText!, "dev", iface, "nud",
                    "permanent",
                ])
            }
        }
        return commands
    }

    /// The `ip` commands that remove the cluster's network: deleting a namespace
    /// deletes the veth end inside it, and with it the pair.
    public var networkTeardown: [[String]] { namespaces.map { ["netns", "del", $0] } }

    /// What a stopped (or killed) node may leave, to remove: a DPDK node's EAL
    /// runtime directory and a memif socket file (`socket-abstract=no`).
    /// Hugepage files are found by their prefix, `dpdkFilePrefix(id)`.
    public func leftovers(of id: UInt16) -> [String] {
        guard let n = node(id), let d = n.dpdk else { return [] }
        var paths = ["/var/run/dpdk/\(dpdkFilePrefix(id))"]
        if d.driver == "memif", d.options["socket-abstract"] == "no" {
            paths.append(d.options["socket"] ?? "/run/memif.sock")
        }
        return paths
    }
}

import DIOSConfig
import DIOSHost
import DIOSWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ClusterFileTests {
    static func shipped(_ name: String) -> String {
        #filePath.replacingOccurrences(of: "Tests/DIOSConfigTests/ClusterFileTests.swift", with: "config/\(name)")
    }

    @Test func theShippedUDPClusterParses() throws {
        let file = try ClusterFile.load(path: Self.shipped("cluster.yaml"))
        #expect(file.nodes.map(\.transport) == ["udp", "udp", "udp"])
        #expect(file.nodes.allSatisfy { $0.mac == nil && $0.dpdk == nil && $0.netns == nil })
        #expect(file.namespaces.isEmpty && file.veth.isEmpty)
        #expect(file.networkSetup.isEmpty && file.networkTeardown.isEmpty)
        #expect(file.ealArguments(for: 0, cpus: "0-1") == nil)
        #expect(
            try file.launch(node: 1, diosd: "/d", path: "/c.yaml").arguments == ["--cluster", "/c.yaml", "--node", "1"])
    }

    /// Two memif nodes: the EAL gets a prefix of its own per node, no PCI,
    /// unlinked hugepages, the main lcore over the given CPUs and the device
    /// with the node's MAC; the neighbour tables map each peer's address to its MAC.
    @Test func theShippedMemifClusterParses() throws {
        let file = try ClusterFile.load(path: Self.shipped("cluster-memif.yaml"))
        #expect(file.name == "memif")
        #expect(file.nodes.map(\.transport) == ["dpdk", "dpdk"])
        let n0 = try #require(file.node(0))
        #expect(n0.macText == "02:00:00:77:00:01")
        #expect(n0.dpdk?.device == "net_memif0")
        #expect(n0.dpdk?.driver == "memif")
        #expect(n0.dpdk?.options["role"] == "server")
        #expect(
            file.ealArguments(for: 0, cpus: "0-1") == [
                "diosd", "--file-prefix", "dios-dpdk-memif-0", "--no-pci", "--iova-mode=va", "--huge-unlink",
                "--lcores", "0@(0-1)",
                "--vdev", "net_memif0,role=server,socket=/tmp/dios-memif.sock,mac=02:00:00:77:00:01",
            ])
        #expect(file.neighbours(of: 0) == [PeerAddress("10.77.0.2", port: 0)!.ipv4: [2, 0, 0, 0x77, 0, 2]])
        #expect(file.neighbours(of: 1) == [PeerAddress("10.77.0.1", port: 0)!.ipv4: [2, 0, 0, 0x77, 0, 1]])
        #expect(file.networkSetup.isEmpty)  // memif needs no namespaces
        #expect(file.leftovers(of: 0) == ["/var/run/dpdk/dios-dpdk-memif-0"])
    }

    static let veth = """
        name: v
        veth: [[0, 1]]
        nodes:
          - id: 0
            transport: dpdk
            address: 10.9.0.1
            port: 7400
            mac: 02:00:00:00:0a:01
            netns: ns-a
            iface: va
            dpdk:
              eal_args: [--log-level, "lib.eal:warning"]
          - id: 1
            address: 10.9.0.2
            port: 7400
            mac: 02:00:00:00:0a:02
            netns: ns-b
            iface: vb
        """

    /// A DPDK node on af_packet and a UDP node, on the two ends of a veth pair.
    @Test func aVethPairBetweenADPDKNodeAndAUDPNode() throws {
        let file = try ClusterFile.parse(Self.veth)
        #expect(file.veth == [ClusterFile.VethPair(a: 0, b: 1)])
        #expect(file.namespaces == ["ns-a", "ns-b"])
        // af_packet on the node's interface unless dpdk.vdev says otherwise.
        #expect(file.node(0)?.dpdk?.vdev == "net_af_packet0,iface=va")
        #expect(
            file.ealArguments(for: 0, cpus: "1") == [
                "diosd", "--file-prefix", "dios-dpdk-v-0", "--no-pci", "--iova-mode=va", "--huge-unlink", "--lcores",
                "0@(1)",
                "--vdev", "net_af_packet0,iface=va", "--log-level", "lib.eal:warning",
            ])
        #expect(
            file.networkSetup == [
                ["netns", "add", "ns-a"], ["-n", "ns-a", "link", "set", "lo", "up"],
                ["netns", "add", "ns-b"], ["-n", "ns-b", "link", "set", "lo", "up"],
                [
                    "link", "add", "va", "address", "02:00:00:00:0a:01", "netns", "ns-a", "type", "veth",
                    "peer", "name", "vb", "address", "02:00:00:00:0a:02", "netns", "ns-b",
                ],
                ["-n", "ns-a", "link", "set", "va", "up"],
                ["-n", "ns-b", "link", "set", "vb", "up"],
                ["-n", "ns-b", "addr", "add", "10.9.0.2/32", "dev", "vb"],
                ["-n", "ns-b", "route", "add", "10.9.0.1/32", "dev", "vb"],
                [
                    "-n", "ns-b", "neigh", "replace", "10.9.0.1", "lladdr", "02:00:00:00:0a:01", "dev", "vb", "nud",
                    "permanent",
                ],
            ])
        #expect(file.networkTeardown == [["netns", "del", "ns-a"], ["netns", "del", "ns-b"]])
        let launch = try file.launch(node: 1, diosd: "/bin/diosd", path: "/c.yaml", extra: ["--once"], ip: "/sbin/ip")
        #expect(launch.executable == "/sbin/ip")
        #expect(
            launch.arguments == [
                "netns", "exec", "ns-b", "/bin/diosd", "--cluster", "/c.yaml", "--node", "1", "--once",
            ])
        #expect(throws: ConfigError.self) { try file.launch(node: 1, diosd: "/d", path: "/c", ip: nil) }
    }

    /// A DPDK node of two instances: a queue pair each (af_packet: qpairs=2).
    @Test func aDPDKNodeOfTwoInstancesGetsAQueuePairEach() throws {
        let file = try ClusterFile.parse(Self.replacing("    iface: va\n", with: "    iface: va\n    cores: [0, 1]\n"))
        #expect(file.node(0)?.cores == [0, 1])
        #expect(file.node(0)?.dpdk?.vdev == "net_af_packet0,iface=va,qpairs=2")
        #expect(file.node(0)?.address(ofInstance: 1) == PeerAddress("10.9.0.1", port: 7401)!)
    }

    /// An AF_XDP socket on the node's interface instead: its vdev as given.
    @Test func aDPDKNodeOnAfXdp() throws {
        let file = try ClusterFile.parse(
            Self.replacing("      eal_args:", with: "      vdev: net_af_xdp0,iface=va\n      eal_args:"))
        #expect(file.node(0)?.dpdk?.vdev == "net_af_xdp0,iface=va")
        #expect(file.node(0)?.dpdk?.driver == "af_xdp")
    }

    static func replacing(_ old: String, with new: String, in text: String = veth) -> String {
        precondition(text.contains(old), "the test's file has no \(old)")
        return text.replacingOccurrences(of: old, with: new)
    }

    static let memifPair = """
        nodes:
          - {id: 0, transport: dpdk, address: 10.0.0.1, port: 7400, mac: "02:00:00:00:00:01", dpdk: {vdev: "net_memif0,role=server"}}
          - {id: 1, transport: dpdk, address: 10.0.0.2, port: 7400, mac: "02:00:00:00:00:02", dpdk: {vdev: "net_memif0,role=client"}}
        """

    @Test(arguments: [
        (
            replacing("mac: 02:00:00:00:0a:01", with: "mac: 02:00:00:00:0a"),
            "node 0: mac must be a unicast Ethernet address"
        ),
        (replacing("mac: 02:00:00:00:0a:01", with: "mac: 03:00:00:00:0a:01"), "mac must be a unicast"),
        (replacing("mac: 02:00:00:00:0a:01", with: "mac: 00:00:00:00:00:00"), "mac must be a unicast"),
        (
            replacing("mac: 02:00:00:00:0a:02", with: "mac: 02:00:00:00:0a:01"),
            "node 1: mac 02:00:00:00:0a:01 is node 0's too"
        ),
        (replacing("    mac: 02:00:00:00:0a:02\n", with: ""), "veth [0, 1]: node 1 needs netns, iface and mac"),
        (replacing("veth: [[0, 1]]\n", with: ""), "node 0: iface va is on no veth pair"),
        (replacing("veth: [[0, 1]]", with: "veth: [[0, 0]]"), "veth: each pair names two different nodes"),
        (replacing("veth: [[0, 1]]", with: "veth: [[0, 2]]"), "veth [0, 2]: no node 2"),
        (replacing("veth: [[0, 1]]", with: "veth: [[0, 1], [1, 0]]"), "node 1 is on another veth pair already"),
        (replacing("netns: ns-b", with: "netns: ns-a"), "both ends are in namespace ns-a"),
        (replacing("netns: ns-b", with: "netns: bad/ns"), "node 1: netns must be 1 to 64 letters"),
        (
            replacing("iface: vb", with: "iface: a-very-long-interface"),
            "node 1: iface must be an interface name of 1 to 15"
        ),
        (replacing("    netns: ns-b\n", with: ""), "node 1: iface vb needs a netns"),
        (
            replacing("address: 10.9.0.2\n    port: 7400", with: "address: 10.9.0.1\n    port: 7401"),
            "node 1: address 10.9.0.1 is node 0's too"
        ),
        (replacing("name: v", with: "name: a/b"), "name must be 1 to 40 letters"),
        (replacing("transport: dpdk", with: "transport: rdma"), "node 0: transport must be udp or dpdk, got rdma"),
        (
            replacing("    iface: vb", with: "    iface: vb\n    dpdk: {vdev: net_memif0}"),
            "node 1: a dpdk mapping on a udp node"
        ),
        (
            replacing(
                "    iface: va\n", with: "    iface: va\n    cores: [0, 1]\n",
                in: replacing(
                    "      eal_args:",
                    with: "      vdev: net_af_packet0,iface=va,qpairs=3\n      "
                        + "eal_args:")),
            "node 0: dpdk.vdev says qpairs=3, the node runs 2 instance(s)"
        ),
        (
            replacing("      eal_args:", with: "      vdev: net_af_packet0,iface=vb\n      eal_args:"),
            "dpdk.vdev uses iface vb but the node's iface is va"
        ),
        (
            replacing("      eal_args:", with: "      vdev: net_af_packet0\n      eal_args:"),
            "dpdk.vdev net_af_packet0 needs iface="
        ),
        (
            replacing(
                "      eal_args:", with: "      vdev: net_af_packet0,iface=va,mac=02:00:00:00:0a:01\n      eal_args:"),
            "af_packet takes its interface's MAC"
        ),
        (
            replacing("      eal_args:", with: "      vdev: net_af_xdp0,iface=vb\n      eal_args:"),
            "dpdk.vdev uses iface vb but the node's iface is va"
        ),
        (
            replacing(
                "      eal_args:", with: "      vdev: net_af_xdp0,iface=va,mac=02:00:00:00:0a:01\n      eal_args:"),
            "af_xdp takes its interface's MAC"
        ),
        (
            replacing(
                "    iface: va\n", with: "    iface: va\n    cores: [0, 1]\n",
                in: replacing("      eal_args:", with: "      vdev: net_af_xdp0,iface=va\n      eal_args:")),
            "node 0: an af_xdp node runs one instance so far"
        ),
        (
            replacing("      eal_args:", with: "      vdev: memif0\n      eal_args:"),
            "dpdk.vdev must be a device like net_memif0"
        ),
        (
            replacing("      eal_args:", with: "      vdev: net_memif0,role\n      eal_args:"),
            "dpdk.vdev must be a device like net_memif0"
        ),
        (
            replacing("      eal_args:", with: "      vdev: \"net_memif0, role=server\"\n      eal_args:"),
            "dpdk.vdev must be a device"
        ),
        (replacing("--log-level", with: "--file-prefix=x"), "dpdk.eal_args must not set --file-prefix"),
        (replacing("--log-level", with: "-l"), "dpdk.eal_args must not set -l"),
        (replacing("      eal_args:", with: "      vdevs: x\n      eal_args:"), "unknown key vdevs"),
        (replacing("    iface: vb", with: "    iface: vb\n    macs: x"), "unknown key macs"),
        (replacing("veth:", with: "veths:"), "unknown key veths"),
        (
            replacing(
                "{id: 1, transport: dpdk, address: 10.0.0.2, port: 7400, mac: \"02:00:00:00:00:02\", dpdk: {vdev: "
                    + "\"net_memif0,role=client\"}}",
                with: "{id: 1, address: 10.0.0.2, port: 7400}", in: memifPair), "node 1: needs a mac: node 0 uses DPDK"
        ),
        (
            replacing("\"02:00:00:00:00:02\"", with: "\"02:00:00:00:00:02\", netns: other", in: memifPair),
            "its memif socket /run/memif.sock is abstract"
        ),
        (
            replacing("role=server", with: "role=server,mac=02:00:00:00:00:09", in: memifPair),
            "node 0: dpdk.vdev says mac=02:00:00:00:00:09, the node's mac is 02:00:00:00:00:01"
        ),
        (
            replacing("dpdk: {vdev: \"net_memif0,role=client\"}", with: "dpdk: {eal_args: []}", in: memifPair),
            "node 1: transport dpdk needs dpdk.vdev"
        ),
        (
            replacing("address: 10.0.0.2, port: 7400", with: "address: 10.0.0.2, port: seventy", in: memifPair),
            "nodes[1].port: expected an integer from 0 to 65535"
        ),
    ])
    func refusesBadClusterFiles(text: String, mentions: String) {
        do {
            _ = try ClusterFile.parse(text)
            Issue.record("accepted:\n\(text)")
        } catch {
            #expect(error.description.contains(mentions), "\(error)")
        }
    }

    @Test func memifNodesInOtherNamespacesNeedAFileSocket() throws {
        let text = Self.replacing(
            "\"02:00:00:00:00:02\"", with: "\"02:00:00:00:00:02\", netns: other", in: Self.memifPair)
        let file = try ClusterFile.parse(
            text.replacingOccurrences(of: "role=server", with: "role=server,socket=/tmp/m.sock,socket-abstract=no")
                .replacingOccurrences(of: "role=client", with: "role=client,socket=/tmp/m.sock,socket-abstract=no"))
        #expect(file.leftovers(of: 0) == ["/var/run/dpdk/dios-dpdk-dios-0", "/tmp/m.sock"])
        // A memif vdev with the node's own mac= is kept as is.
        let same = try ClusterFile.parse(
            Self.memifPair.replacingOccurrences(of: "role=server", with: "role=server,mac=02:00:00:00:00:01"))
        #expect(same.ealArguments(for: 0, cpus: "0")?.contains("net_memif0,role=server,mac=02:00:00:00:00:01") == true)
    }

    /// `isRunning`, which `dios cluster up` and `down` ask of a node's pid: a
    /// live process runs; a killed one does not, also while it is a zombie
    /// not yet reaped (a node killed after `dios cluster up` exited); a pid
    /// with no process does not.
    @Test func aKilledProcessDoesNotRunEvenAsAZombie() throws {
        #expect(Host.isRunning(getpid()))
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { for a in argv { free(a) } }
        try #require(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        #expect(Host.isRunning(pid))
        kill(pid, SIGKILL)
        // Dead and not reaped: a zombie until waitpid below.
        var zombie = false
        for _ in 0..<200 where !zombie {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            zombie = stat.contains(") Z ")
            if !zombie { usleep(5_000) }
        }
        #expect(zombie, "the child never showed as a zombie")
        #expect(kill(pid, 0) == 0, "a zombie still answers kill(pid, 0)")
        #expect(!Host.isRunning(pid))
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect(!Host.isRunning(pid))
    }

    /// `SocketFile`: a socket a process listens on is live and kept; once
    /// closed (its file left, as by a killed process) it is stale and
    /// removed; a path that is not a socket is never removed.
    @Test func aSocketFileIsRemovedOnlyWhenNobodyListens() throws {
        let path = "/tmp/dios-socketfile-\(getpid()).sock"
        defer { unlink(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let bound = SocketFile.attach(fd, to: path) { bind($0, $1, $2) }
        try #require(bound == 0 && listen(fd, 4) == 0)
        #expect(SocketFile.isSocket(path) && SocketFile.isListening(path))
        #expect(!SocketFile.removeIfStale(path))
        #expect(SocketFile.isSocket(path))
        close(fd)
        #expect(!SocketFile.isListening(path))
        #expect(SocketFile.removeIfStale(path))
        #expect(!SocketFile.isSocket(path) && access(path, F_OK) != 0)

        let plain = "/tmp/dios-socketfile-\(getpid()).txt"
        defer { unlink(plain) }
        try "not a socket".write(toFile: plain, atomically: true, encoding: .utf8)
        #expect(!SocketFile.isSocket(plain) && !SocketFile.removeIfStale(plain))
        #expect(access(plain, F_OK) == 0)
    }
}

import ArgumentParser
import CLinux
import DIOS
import DIOSDevices
import DIOSHost
import DIOSTransport
import DIOSWire
import Dispatch
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Two network namespaces joined by a veth pair: two "hosts" on one machine.
struct VethPair {
    let nsA: String
    let nsB: String
    let addressA = PeerAddress("10.77.0.1", port: 0)!
    let addressB = PeerAddress("10.77.0.2", port: 0)!
    /// The interfaces: `interfaceA` in `nsA`, `interfaceB` in `nsB`.
    var interfaceA: String { "dbva" + tag }
    var interfaceB: String { "dbvb" + tag }
    /// The process id: what tells a live run's namespaces from a dead one's.
    var tag: String { String(nsA.dropFirst(Self.prefixA.count)) }
    static let prefixA = "diosbench-a"
    static let prefixB = "diosbench-b"

    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// The pair's names for this process (nothing is made yet).
    static func forThisProcess() -> VethPair {
        let tag = "\(getpid())"  // at most 7 digits: "dbva" + tag fits an interface name's 15
        return VethPair(nsA: prefixA + tag, nsB: prefixB + tag)
    }

    /// Makes the namespaces and the pair between them; on failure removes
    /// what it made.
    func make() throws {
        guard geteuid() == 0 else { throw SetupError(description: "needs root (ip netns, veth)") }
        let commands: [[String]] = [
            ["netns", "add", nsA], ["netns", "add", nsB],
            ["link", "add", interfaceA, "type", "veth", "peer", "name", interfaceB],
            ["link", "set", interfaceA, "netns", nsA], ["link", "set", interfaceB, "netns", nsB],
            ["-n", nsA, "addr", "add", "10.77.0.1/24", "dev", interfaceA],
            ["-n", nsB, "addr", "add", "10.77.0.2/24", "dev", interfaceB],
            ["-n", nsA, "link", "set", interfaceA, "up"], ["-n", nsB, "link", "set", interfaceB, "up"],
            ["-n", nsA, "link", "set", "lo", "up"], ["-n", nsB, "link", "set", "lo", "up"],
        ]
        for c in commands where Host.ip(c).status != 0 {
            remove()
            throw SetupError(description: "`ip \(c.joined(separator: " "))` failed")
        }
    }

    /// Deleting the namespaces deletes the veth pairs in them (and deleting
    /// one end a pair not yet moved into them).
    func remove() {
        Host.ip(["netns", "del", nsA])
        Host.ip(["netns", "del", nsB])
        Host.ip(["link", "del", interfaceA])
    }

    /// Removes the pair when the run is stopped by SIGINT, SIGTERM or SIGHUP
    /// (Ctrl-C, `timeout`), then exits with 128 + the signal, as the shell
    /// would have: the signals are caught from here on. Cancel the sources
    /// before `remove()`.
    func removeOnSignal() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM, SIGHUP].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            let pair = self
            source.setEventHandler {
                VethPair.stoppingOnSignal.store(true, ordering: .releasing)
                pair.remove()
                exit(128 + signo)
            }
            source.resume()
            return source
        }
    }

    /// Gives the signals of `removeOnSignal` their default action back
    /// (once its sources are cancelled).
    static func stopCatchingSignals() {
        for signo in [SIGINT, SIGTERM, SIGHUP] { signal(signo, SIG_DFL) }
    }

    /// Set by the signal handler of `removeOnSignal` before it removes the pair.
    static let stoppingOnSignal = Atomic<Bool>(false)

    /// Removes the namespaces (and the veth pairs in them) of earlier runs
    /// whose process is gone: a run killed with SIGKILL cannot remove its own.
    /// A name whose pid is alive (or taken again) is left.
    static func removeStale() {
        guard let dir = opendir("/run/netns") else { return }
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            for prefix in [prefixA, prefixB] where name.hasPrefix(prefix) {
                if let pid = Int32(name.dropFirst(prefix.count)), pid > 0, kill(pid, 0) != 0, errno == ESRCH {
                    stale.append(name)
                }
            }
        }
        closedir(dir)
        for name in stale { Host.ip(["netns", "del", name]) }
    }
}

import ArgumentParser
import DIOS
import DIOSDevices

/// dios: the DIOS command line.
@main
struct Dios: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dios",
        abstract: "The DIOS command line.",
        subcommands: [NameCommand.self, Probe.self, Bench.self])
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print percentiles next to baselines measured in the same run.",
        subcommands: [BenchIPC.self])
}

struct NameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "name", abstract: "Make or check object names.", subcommands: [New.self, Check.self])

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print fresh random names.")
        @Option(name: .shortAndLong, help: "How many.") var count: Int = 1
        func run() {
            for _ in 0..<max(count, 0) { print(Name.random()) }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check that a text is a well-formed name.")
        @Argument(help: "The 44-character base64 name.") var text: String
        func run() throws {
            do {
                let name = try Name.parse(text)
                print("\(name) is a valid name\(name.isWellKnown ? " (well-known)" : "")")
            } catch {
                throw ValidationError("\(text): \(error)")
            }
        }
    }
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what this machine offers DIOS: hugepages, DPDK, RDMA.")
    func run() {
        for probe in DeviceProbe.all() { print(probe) }
    }
}

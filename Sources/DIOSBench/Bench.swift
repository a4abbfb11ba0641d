public import ArgumentParser

/// `dios bench`: its subcommands.
public struct Bench: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print percentiles next to baselines measured in the same run.",
        subcommands: [BenchIPC.self, BenchScale.self, BenchNames.self])

    public init() {}
}

/// A command that could not do its work (a node that did not come up, no node
/// at a control socket, no permission): said without the usage text, which
/// ArgumentParser adds to a `ValidationError`, for mistakes on the command line.
public struct CommandFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

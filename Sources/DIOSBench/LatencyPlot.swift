import DIOSDevices
import DIOSHost
import Foundation
import Histogram

/// `--plot FILE`: what a benchmark run measured, drawn by gnuplot (Debian's
/// `gnuplot-nox`): latencies as cumulative distributions on a log time axis,
/// one curve per mechanism and payload, so that a tail one column of
/// percentiles hides shows; `bench scale`'s throughput per step. SVG for
/// `.svg`, PNG for `.png`.
enum LatencyPlot {
    static let gnuplot = ["/usr/bin/gnuplot", "/usr/local/bin/gnuplot"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// The percentiles each curve is drawn through: every percent, then the
    /// tail in finer steps up to 99.99.
    static let percentiles: [Double] =
        (0..<100).map(Double.init) + [99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 100]

    /// The points of `histogram`'s distribution: (nanoseconds, percentile).
    static func points(_ histogram: Histogram<UInt64>) -> [(UInt64, Double)] {
        percentiles.map { p in (p == 0 ? histogram.min : histogram.valueAtPercentile(p), p) }
    }

    /// Refuses a file gnuplot will not be asked to draw, before a run is spent on it.
    static func check(_ path: String) throws(CommandFailure) {
        guard path.hasSuffix(".svg") || path.hasSuffix(".png") else {
            throw CommandFailure("--plot \(path): the file must end in .svg or .png")
        }
        guard gnuplot != nil else {
            throw CommandFailure("--plot needs gnuplot: apt-get install gnuplot-nox")
        }
    }

    /// Draws `series` (label and histogram each) into `path`, titled `title`
    /// with the host's description under it.
    static func draw(
        _ series: [(String, Histogram<UInt64>)], title: String, axis: String = "round trip", to path: String
    ) throws(CommandFailure) {
        let series = series.filter { $0.1.totalCount > 0 }
        guard !series.isEmpty else { throw CommandFailure("--plot: nothing was measured") }
        try render(
            series.map { ($0.0, points($0.1).map { (Double($0.0), $0.1) }, "steps") }, title: title,
            settings: [
                "set logscale x 10", "set format x '%.0s%c'", "set xlabel \(quoted(axis + " (ns, log scale)"))",
                "set ylabel 'percentile'",
                "set yrange [0:100]", "set ytics 10",
            ], to: path)
    }

    /// Draws messages per second against the number of pairs, one line per
    /// series (`bench scale`).
    static func drawThroughput(
        _ series: [(String, [(pairs: Int, perSecond: Double)])], title: String, to path: String
    ) throws(CommandFailure) {
        try render(
            series.map { ($0.0, $0.1.map { (Double($0.pairs), $0.perSecond / 1e6) }, "linespoints") }, title: title,
            settings: [
                "set xlabel 'pairs of instances'", "set ylabel 'million 64 B messages per second, all pairs'",
                "set yrange [0:*]", "set xtics 1",
            ], to: path)
    }

    /// Writes each series' points to a file of its own and has gnuplot draw them.
    static func render(
        _ series: [(label: String, points: [(Double, Double)], style: String)], title: String, settings: [String],
        to path: String
    ) throws(CommandFailure) {
        try check(path)
        let directory = NSTemporaryDirectory() + "dios-plot-\(getpid())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var plots: [String] = []
        for (n, s) in series.enumerated() {
            let data = "\(directory)/\(n).dat"
            let lines = s.points.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
            do { try lines.write(toFile: data, atomically: true, encoding: .utf8) } catch {
                throw CommandFailure("--plot: cannot write \(data): \(error)")
            }
            plots.append("'\(data)' using 1:2 with \(s.style) linewidth 2 title \(quoted(s.label))")
        }
        let terminal =
            path.hasSuffix(".svg")
            ? "set terminal svg size 960,600 dynamic font 'sans,12' background '#ffffff'"
            : "set terminal pngcairo size 1280,800 font 'sans,11'"
        let script =
            [
                terminal, "set output \(quoted(path))",
                // The host line under the title, as every table prints it.
                "set title \(quoted(title)) . \"\\n\" . \(quoted("\(HostDescription.current())"))",
                "set grid xtics mxtics ytics", "set key outside right top",
            ] + settings + ["plot " + plots.joined(separator: ", \\\n  ")]
        let scriptPath = "\(directory)/plot.gp"
        do { try script.joined(separator: "\n").write(toFile: scriptPath, atomically: true, encoding: .utf8) } catch {
            throw CommandFailure("--plot: cannot write \(scriptPath): \(error)")
        }
        let (status, output) = Host.run(gnuplot!, [scriptPath])
        guard status == 0 else { throw CommandFailure("gnuplot failed (status \(status)): \(output)") }
    }

    /// A gnuplot string: single-quoted, its quotes doubled.
    static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// The machine a benchmark ran on, in one line to print above its table.
///
/// Latency figures and the ratios between them depend on the host more than on
/// anything else: the same build has measured a 90 ns cross-core floor on one
/// 2-vCPU guest and a 210 ns one on another, and the goals read differently on
/// each. A table that names its CPU can be compared with another; one that does
/// not cannot.
public struct HostDescription: Sendable, Equatable, CustomStringConvertible {
    /// The CPU's "model name" in /proc/cpuinfo (nil where there is none, as on
    /// most Arm kernels).
    public var cpuModel: String?
    /// CPUs online.
    public var onlineCPUs: Int
    /// The CPU reports the `hypervisor` flag: this is a virtual machine.
    public var virtualMachine: Bool

    public init(cpuModel: String?, onlineCPUs: Int, virtualMachine: Bool) {
        self.cpuModel = cpuModel
        self.onlineCPUs = onlineCPUs
        self.virtualMachine = virtualMachine
    }

    /// Reads the first processor's entry of `/proc/cpuinfo` text (its "model
    /// name" and "flags" lines; runs of spaces in the model are folded to one).
    public static func parse(cpuinfo: String, onlineCPUs: Int) -> HostDescription {
        var model: String? = nil
        var virtual = false
        for line in cpuinfo.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty && model != nil { break }  // the end of the first processor's entry
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters()
            let value = line[line.index(after: colon)...]
            switch key {
            case "model name":
                let words = value.split(separator: " ", omittingEmptySubsequences: true)
                if !words.isEmpty { model = words.joined(separator: " ") }
            case "flags":
                virtual = value.split(separator: " ").contains("hypervisor")
            default:
                continue
            }
        }
        return HostDescription(cpuModel: model, onlineCPUs: onlineCPUs, virtualMachine: virtual)
    }

    /// This machine.
    public static func current() -> HostDescription {
        parse(
            cpuinfo: DeviceProbe.readFile("/proc/cpuinfo") ?? "", onlineCPUs: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// "host: Intel(R) Xeon(R) Processor, 2 CPUs online, a virtual machine".
    public var description: String {
        "host: \(cpuModel ?? "CPU model unknown"), \(onlineCPUs) CPU\(onlineCPUs == 1 ? "" : "s") online, "
            + (virtualMachine ? "a virtual machine" : "no hypervisor reported")
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}

import DIOSDevices
import Testing

@Suite struct HostDescriptionTests {
    /// Two processors of an x86 guest, as /proc/cpuinfo lists them (abridged).
    static let guest = """
        processor\t: 0
        vendor_id\t: GenuineIntel
        model name\t: Intel(R) Xeon(R)   Processor
        flags\t\t: fpu vme de pse tsc msr hypervisor lahf_lm abm

        processor\t: 1
        vendor_id\t: GenuineIntel
        model name\t: Another Model
        flags\t\t: fpu vme

        """

    @Test func theFirstProcessorsModelAndTheHypervisorFlagAreRead() {
        let host = HostDescription.parse(cpuinfo: Self.guest, onlineCPUs: 2)
        #expect(host == HostDescription(cpuModel: "Intel(R) Xeon(R) Processor", onlineCPUs: 2, virtualMachine: true))
        #expect(host.description == "host: Intel(R) Xeon(R) Processor, 2 CPUs online, a virtual machine")
    }

    /// An Arm kernel's entries have no "model name", and bare metal no "hypervisor" flag.
    @Test func aMissingModelOrFlagIsSaidSo() {
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
        let host = HostDescription.parse(cpuinfo: arm, onlineCPUs: 1)
        #expect(host == HostDescription(cpuModel: nil, onlineCPUs: 1, virtualMachine: false))
        #expect(host.description == "host: CPU model unknown, 1 CPU online, no hypervisor reported")
        #expect(HostDescription.parse(cpuinfo: "", onlineCPUs: 4).cpuModel == nil)
    }

    /// The flag is a whole word of the flags line, not a part of one.
    @Test func onlyTheWholeHypervisorFlagCounts() {
        let text = "model name\t: X\nflags\t\t: fpu nothypervisor hypervisorish\n"
        #expect(!HostDescription.parse(cpuinfo: text, onlineCPUs: 1).virtualMachine)
    }

    @Test func thisMachineHasAtLeastOneCPU() {
        #expect(HostDescription.current().onlineCPUs >= 1)
    }
}

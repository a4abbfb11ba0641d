import DIOSDevices
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct DeviceProbeTests {
    @Test func dpdkIsLinkedWithTheDefaultTraits() {
        let probe = DeviceProbe.dpdk()
        #expect(probe.state == .available)
        #expect(probe.detail.hasPrefix("DPDK "))
    }

    /// Without /sys/class/infiniband (no RDMA in the kernel, as on CI), the real
    /// verbs library is asked and the answer is a typed error naming what is missing.
    @Test func rdmaReportsDevicesOrWhatIsMissing() {
        let kernelHasRDMA = access("/sys/class/infiniband", F_OK) == 0
        switch Result(catching: { () throws(RDMAError) in try DeviceProbe.rdmaDevices() }) {
        case .success(let devices):
            #expect(kernelHasRDMA)
            #expect(!devices.isEmpty)
        case .failure(.deviceListFailed(let code)):
            #expect(!kernelHasRDMA || code != ENOSYS)
            let text = RDMAError.deviceListFailed(errno: code).description
            #expect(text.contains("ibv_get_device_list"))
            if code == ENOSYS { #expect(text.contains("no InfiniBand/RDMA support")) }
            #expect(DeviceProbe.rdma().state == .unavailable)
        case .failure(.noDevices):
            #expect(DeviceProbe.rdma().detail.contains("soft-RoCE"))
        case .failure(.notBuilt):
            Issue.record("the RDMA trait is on by default")
        }
    }

    @Test func hugepageProbeMatchesProcMeminfo() {
        let probe = DeviceProbe.hugepages()
        #expect(probe.facility == "hugepages")
        if probe.state == .available {
            #expect(probe.detail.contains("hugetlbfs at /"))
        } else {
            #expect(probe.detail.contains("hugepages.sh"))
        }
    }
}

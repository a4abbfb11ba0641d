#if DIOS_DPDK
public import DIOSWire
#if canImport(Glibc)
import Glibc
#endif
import CDPDK
import CLinux
import Synchronization

// MARK: In-place frames

extension DPDKTransport {

    /// An mbuf to write a frame in: `bytes` is its data past the Ethernet, IPv4
    /// and UDP headers, which `sendFrame` writes in front.
    public func allocateFrame() -> TransportFrame? {
        guard let mbuf = cdpdk_pktmbuf_alloc(port.pool) else {
            counters.noMbuf &+= 1
            return nil
        }
        // Fresh, its data length is 0 until the first `sendFrame` sets it.
        guard Int(cdpdk_mbuf_capacity(mbuf)) >= EthernetUDP.headerSize + maxFrameSize, let data = cdpdk_mbuf_data(mbuf)
        else {
            cdpdk_pktmbuf_free(mbuf)
            counters.noMbuf &+= 1
            return nil
        }
        return TransportFrame(handle: mbuf, bytes: data + EthernetUDP.headerSize, capacity: maxFrameSize)
    }

    /// Queues the frame's mbuf itself for the device, with a reference of the
    /// device's own (the driver drops it once the packet is out), so the caller's
    /// stays valid for a resend. The headers are written on the first send only:
    /// a resend must not touch bytes a device may still be reading.
    public func sendFrame(_ frame: TransportFrame, length: Int, to peer: PeerAddress) -> Bool {
        guard length <= maxFrameSize else {
            counters.oversize &+= 1
            return false
        }
        guard let destinationMAC = destinationMAC(for: peer.ipv4) else {
            counters.unknownNeighbour &+= 1
            return false
        }
        let mbuf = frame.handle
        let total = EthernetUDP.headerSize + length
        guard cdpdk_mbuf_data_len(mbuf) == 0 || Int(cdpdk_mbuf_data_len(mbuf)) == total else { return false }
        if cdpdk_mbuf_data_len(mbuf) == 0 {  // the first send
            guard cdpdk_mbuf_set_len(mbuf, UInt16(total)) == 0 else { return false }
            writeHeaders(at: frame.bytes - EthernetUDP.headerSize, to: peer, mac: destinationMAC, payloadLength: length)
        }
        _ = cdpdk_mbuf_refcnt_update(mbuf, 1)
        counters.sentInPlace &+= 1
        return queueForDevice(mbuf)
    }

    /// True when only the frame's owner holds its mbuf (no device still has it queued).
    public func isIdle(_ frame: TransportFrame) -> Bool {
        cdpdk_mbuf_refcnt_read(frame.handle) == 1
    }

    /// Frees the frame's mbuf, unless the EAL has been cleaned up: its memory is
    /// gone with it (a session let go after `DPDKEnvironment.cleanup()`).
    public func releaseFrame(_ frame: TransportFrame) {
        guard port.environment.isRunning else { return }
        cdpdk_pktmbuf_free(frame.handle)
    }

    public func peerLeaving(_ address: PeerAddress) { port.peerLeaving() }

    /// Keeps the mbuf `receive` is handing over, when `bytes` lies in its
    /// packet: it is left out of the burst's free (and counted in `kept`).
    public func keepReceived(_ bytes: UnsafeRawPointer) -> OpaquePointer? {
        guard handing >= 0, let mbuf = rxMbufs[handing], let start = handingBytes.baseAddress,
            bytes >= start && bytes < start + handingBytes.count
        else { return nil }
        rxMbufs[handing] = nil
        taken += 1
        counters.kept &+= 1
        return mbuf
    }

    /// Frees a kept mbuf, unless the EAL has been cleaned up (its memory is gone with it).
    public func releaseReceived(_ handle: OpaquePointer) {
        guard port.environment.isRunning else { return }
        cdpdk_pktmbuf_free(handle)
    }

    public func hold() { holding = true }

    public func flush() {
        holding = false
        flushTX()
    }

    /// Hands the frames `send` has queued to the device. Returns false when the
    /// TX ring refused some (those are freed and counted in `sendQueueFull`).
    @discardableResult
    public func flushTX() -> Bool {
        guard txPending > 0 else { return true }
        let pending = txPending
        // A leaving peer's link is left alone: what waits for it is dropped (lost on the wire).
        let sent = port.isInUse(queue: queue) ? Int(cdpdk_tx_burst(port.id, queue, txMbufs, UInt16(pending))) : 0
        counters.sent &+= UInt64(sent)
        if sent < pending {
            // The device took a prefix; the rest are still ours.
            cdpdk_pktmbuf_free_bulk(txMbufs + sent, UInt32(pending - sent))
            counters.sendQueueFull &+= UInt64(pending - sent)
        }
        txMbufs.update(repeating: nil, count: pending)
        txPending = 0
        return sent == pending
    }

    /// Takes up to `rxBurst` packets, hands each UDP datagram for `localAddress`
    /// to `body` (the payload in place in its mbuf, valid only during the call),
    /// answers ARP requests, drops and counts the rest, then frees the mbufs.
    /// Returns how many frames `body` got. `body` may call `send`, not `receive`
    /// (a nested call returns 0).
    public func receive(_ body: (UnsafeRawBufferPointer, PeerAddress) -> Void) -> Int {
        flushTX()
        guard !receiving else { return 0 }
        receiving = true
        defer { receiving = false }
        // Packets the node's other instances took for us first, then the device's.
        var count = 0
        if let steering {
            for from in 0..<steering.instances where from != instance {
                while count < rxBurst, let mbuf = steering.take(from: from, to: instance) {
                    rxMbufs[count] = mbuf
                    count += 1
                }
            }
        }
        if count < rxBurst && port.isInUse(queue: queue) {
            count += Int(cdpdk_rx_burst(port.id, queue, rxMbufs + count, UInt16(rxBurst - count)))
        }
        // Nearly every poll of an idle link ends here.
        guard count > 0 else { return 0 }
        var delivered = 0
        taken = 0
        for i in 0..<count {
            guard let mbuf = rxMbufs[i] else { continue }
            // One segment only: a 1514-byte frame always fits one 2048-byte buffer.
            guard cdpdk_mbuf_is_contiguous(mbuf) == 1, let data = cdpdk_mbuf_data(mbuf) else {
                counters.dropped[.malformed, default: 0] &+= 1
                continue
            }
            // The mbuf's data: `data_len` bytes at `data`, owned by us until freed below.
            let packet = UnsafeMutableRawBufferPointer(start: data, count: Int(cdpdk_mbuf_data_len(mbuf)))
            switch EthernetUDP.classify(
                UnsafeRawBufferPointer(packet), mac: port.mac, local: localAddress, siblings: steering?.ports)
            {
            case .frame(let payload, let source):
                counters.received &+= 1
                delivered += 1
                handing = i
                handingBytes = UnsafeRawBufferPointer(packet)
                body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(packet)[payload]), source)
                handing = -1
            case .arpRequest:
                // Reply in the request's own mbuf; the device owns it once taken.
                EthernetUDP.rewriteARPRequestAsReply(packet, mac: port.mac, ipv4: localAddress.ipv4)
                var reply: OpaquePointer? = mbuf
                if cdpdk_tx_burst(port.id, queue, &reply, 1) == 1 {
                    rxMbufs[i] = nil
                    taken += 1
                    counters.arpReplies &+= 1
                }
            case .sibling(let to):
                // classify only says .sibling when there is a steering.
                if steering!.hand(mbuf, from: instance, to: Int(to - steering!.basePort)) {
                    rxMbufs[i] = nil  // the sibling frees it
                    taken += 1
                    counters.handedOver &+= 1
                } else {
                    counters.dropped[.siblingBusy, default: 0] &+= 1
                }
            case .drop(let reason):
                counters.dropped[reason, default: 0] &+= 1
            }
        }
        // Frees what is still ours; the ARP replies the device took are nil here.
        // (None left when each message stays in its frame to be read there.)
        if taken < count { cdpdk_pktmbuf_free_bulk(rxMbufs, UInt32(count)) }
        return delivered
    }
}
#endif

import DIOSMemory
import Testing

/// Messages held elsewhere (a received frame kept for reading in place): the
/// reader's view is the message where it lies, and the ring names the buffer
/// to give back, or copies the message in.
struct StreamRingHeldTests {
    /// A ring of `depth` slots for `messageSize`-byte messages, in zeroed memory.
    static func withRing(messageSize: Int, depth: Int, _ body: (StreamRing) -> Void) {
        let bytes = StreamRing.byteSize(messageSize: messageSize, depth: depth)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        defer { memory.deallocate() }
        body(StreamRing.initialize(at: memory, messageSize: messageSize, depth: depth))
    }

    static func inRing(_ ring: StreamRing, _ p: UnsafeRawPointer) -> Bool {
        p >= UnsafeRawPointer(ring.base)
            && p < UnsafeRawPointer(ring.base)
                + StreamRing.byteSize(messageSize: ring.maxMessage, depth: Int(ring.depth))
    }

    @Test func aHeldMessageIsViewedWhereItLiesAndNamesItsBuffer() {
        let outside = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { outside.deallocate() }
        for k in 0..<64 { outside.storeBytes(of: UInt8(k), toByteOffset: k, as: UInt8.self) }
        let handle = OpaquePointer(bitPattern: 0xABC0)!
        Self.withRing(messageSize: 64, depth: 4) { ring in
            _ = ring.reserve()!
            ring.publish(at: outside + 3, length: 40, handle: handle)
            let direct = ring.reserve()!
            direct.storeBytes(of: UInt64(7), as: UInt64.self)
            ring.publish(length: 8)

            // A consumer that did not put held messages in the ring does not
            // follow one (a process may have written the header): it sees the slot.
            let (slot, slotCount) = ring.peek()!
            #expect(Self.inRing(ring, slot) && slotCount == 40)
            let (view, count) = ring.peek(followingHeld: true)!
            #expect(view == outside + 3 && count == 40)  // no copy: the bytes where they are
            #expect(ring.oldestHandle() == handle)
            ring.release()

            let (own, ownCount) = ring.peek()!
            #expect(Self.inRing(ring, own) && ownCount == 8 && own.load(as: UInt64.self) == 7)
            #expect(ring.oldestHandle() == nil)  // held by the ring itself
            ring.release()
            #expect(ring.peek() == nil && ring.oldestHandle() == nil)
        }
    }

    @Test func theBuffersOfUnreadMessagesAreListedOldestFirst() {
        let outside = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { outside.deallocate() }
        let handles = (1...3).map { OpaquePointer(bitPattern: $0 * 0x100)! }
        Self.withRing(messageSize: 16, depth: 4) { ring in
            for (n, h) in handles.enumerated() {
                _ = ring.reserve()!
                ring.publish(at: outside + n, length: 4, handle: h)
                if n == 0 {
                    _ = ring.reserve()!
                    ring.publish(length: 0)  // one of its own between them
                }
            }
            _ = ring.peek()!
            ring.release()  // the first is read (its buffer given back by the reader)
            var listed: [OpaquePointer] = []
            ring.forEachHandle { listed.append($0) }
            #expect(listed == Array(handles.dropFirst()))
        }
    }

    @Test func copyingHeldMessagesInGivesEveryBufferBackAndKeepsTheBytes() {
        let outside = UnsafeMutableRawPointer.allocate(byteCount: 2 * 56, alignment: 8)
        defer { outside.deallocate() }
        for k in 0..<(2 * 56) {
            outside.storeBytes(of: UInt8(truncatingIfNeeded: k * 7), toByteOffset: k, as: UInt8.self)
        }
        let handles = [OpaquePointer(bitPattern: 0x1000)!, OpaquePointer(bitPattern: 0x2000)!]
        // 56 bytes: the whole payload of a 64-byte slot, covering where the
        // slot kept the message's address and handle.
        Self.withRing(messageSize: 56, depth: 2) { ring in
            for (n, h) in handles.enumerated() {
                _ = ring.reserve()!
                ring.publish(at: outside + n * 56, length: 56, handle: h)
            }
            var given: [OpaquePointer] = []
            ring.copyInHeldMessages { given.append($0) }
            #expect(given == handles)
            for n in 0..<2 {
                let (view, count) = ring.peek()!
                #expect(Self.inRing(ring, view) && count == 56)
                #expect(ring.oldestHandle() == nil)
                #expect(memcmp(view, outside + n * 56, 56) == 0)
                ring.release()
            }
        }
    }
    /// A header written by someone else claiming more than its slot holds
    /// (a task process maps the arena) is cut to the slot.
    @Test func aLengthLargerThanItsSlotIsCutToTheSlot() {
        Self.withRing(messageSize: 16, depth: 2) { ring in
            let payload = ring.reserve()!
            (payload - 8).storeBytes(of: UInt64(1) << 32 | 0x7FFF_FFFF, as: UInt64.self)
            let (view, count) = ring.peek()!
            #expect(view == payload && count == ring.stride - 8)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A fixed run of slots in memory the session owns, indexed by `Session.slot`.
/// A class's `Array` property re-checks its uniqueness (a runtime call) on every
/// write, several times per frame; here a write is a store. Noncopyable: the
/// session holds it and frees it once, when it goes.
struct Slots<Element>: ~Copyable {
    private let base: UnsafeMutablePointer<Element>
    let count: Int

    init(repeating value: Element, count: Int) {
        base = .allocate(capacity: count)
        base.initialize(repeating: value, count: count)
        self.count = count
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    subscript(i: Int) -> Element {
        @inline(__always) get {
            precondition(i >= 0 && i < count, "slot \(i) out of range")
            return base[i]
        }
        @inline(__always) nonmutating set {
            precondition(i >= 0 && i < count, "slot \(i) out of range")
            base[i] = newValue
        }
    }
}

/// A task's handle on an object: a slot in the task's reference table and the
/// slot's generation. It is only a number pair — the rights, kind and location
/// live in the table the kernel holds, so a task cannot forge or widen them.
public struct Ref: Hashable, Sendable, CustomStringConvertible {
    public let slot: UInt32
    public let generation: UInt32

    @inlinable public init(slot: UInt32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }

    public var description: String { "ref(\(slot)/\(generation))" }
}

/// What a reference table holds for one reference.
public struct ReferenceEntry: Sendable, Equatable {
    /// The object instance, in the id space of `owner`.
    public var object: ObjectID
    /// The kernel instance that holds the object.
    public var owner: InstanceID
    public var kind: ObjectKind
    public var rights: Rights
    public var proximity: Proximity
    /// The largest single write the object accepts (a blob's capacity, a stream's slot size).
    public var maxWriteSize: Int
    public var persistent: Bool

    public init(
        object: ObjectID, owner: InstanceID, kind: ObjectKind, rights: Rights,
        proximity: Proximity, maxWriteSize: Int, persistent: Bool
    ) {
        self.object = object
        self.owner = owner
        self.kind = kind
        self.rights = rights
        self.proximity = proximity
        self.maxWriteSize = maxWriteSize
        self.persistent = persistent
    }
}

/// Why a reference could not be used.
public enum ReferenceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The slot was never handed out.
    case invalid(Ref)
    /// The slot was released (by `delete`); the reference is stale.
    case stale(Ref)
    /// The reference lacks a right the call needs.
    case missingRight(Ref, needed: Rights, held: Rights)
    /// `copy` asked for rights the source reference does not hold.
    case widening(Ref, requested: Rights, held: Rights)
    /// The table is full.
    case tableFull

    public var description: String {
        switch self {
        case .invalid(let r): "\(r) was never issued to this task"
        case .stale(let r): "\(r) is stale: its object was deleted or the reference dropped"
        case .missingRight(let r, let needed, let held): "\(r) holds rights \(held), the call needs \(needed)"
        case .widening(let r, let requested, let held):
            "\(r) holds rights \(held); copy may only restrict, asked for \(requested)"
        case .tableFull: "the reference table is full"
        }
    }
}

/// A task's reference table: slots with generations and a free list.
///
/// Slot numbers are reused, generations are not: a released slot's generation is
/// bumped, so every `Ref` issued for it before fails with `.stale`.
public struct ReferenceTable: Sendable {
    @usableFromInline
    struct Slot: Sendable {
        @usableFromInline var generation: UInt32
        @usableFromInline var entry: ReferenceEntry?
    }

    @usableFromInline var slots: [Slot] = []
    @usableFromInline var allocator: SlotAllocator
    public let capacity: Int
    public private(set) var count = 0

    public init(capacity: Int = 1 << 16, reserve: Int = 64) {
        self.capacity = capacity
        slots.reserveCapacity(reserve)
        allocator = SlotAllocator(reserve: reserve)
    }

    /// Adds an entry and returns the reference naming it.
    public mutating func insert(_ entry: ReferenceEntry) throws(ReferenceError) -> Ref {
        if let slot = allocator.reusable() {
            slots[Int(slot)].entry = entry
            count += 1
            return Ref(slot: slot, generation: slots[Int(slot)].generation)
        }
        guard slots.count < capacity else { throw .tableFull }
        slots.append(Slot(generation: SlotAllocator.firstGeneration, entry: entry))
        count += 1
        return Ref(slot: UInt32(slots.count - 1), generation: SlotAllocator.firstGeneration)
    }

    /// The entry behind a reference, or why there is none.
    @inlinable @inline(__always)
    public func entry(_ ref: Ref) throws(ReferenceError) -> ReferenceEntry {
        let i = Int(ref.slot)
        guard i < slots.count else { throw .invalid(ref) }
        let slot = slots[i]
        guard slot.generation == ref.generation, let entry = slot.entry else {
            throw ref.generation < slot.generation ? .stale(ref) : .invalid(ref)
        }
        return entry
    }

    /// The entry behind a reference when it is valid, else nil: the data
    /// path's check, which `entry(_:)` repeats to say why not.
    @inlinable @inline(__always)
    public func validEntry(_ ref: Ref) -> ReferenceEntry? {
        let i = Int(ref.slot)
        guard i < slots.count, slots[i].generation == ref.generation else { return nil }
        return slots[i].entry
    }

    /// The entry, checked to hold `rights`.
    @inlinable @inline(__always)
    public func entry(_ ref: Ref, requiring rights: Rights) throws(ReferenceError) -> ReferenceEntry {
        let e = try entry(ref)
        guard e.rights.isSuperset(of: rights) else { throw .missingRight(ref, needed: rights, held: e.rights) }
        return e
    }

    /// Releases a slot; every copy of `ref` becomes stale. Returns the entry it held.
    @discardableResult
    public mutating func remove(_ ref: Ref) throws(ReferenceError) -> ReferenceEntry {
        let e = try entry(ref)
        let i = Int(ref.slot)
        slots[i].entry = nil
        slots[i].generation = allocator.release(ref.slot, generation: slots[i].generation)
        count -= 1
        return e
    }

    /// Every live reference and its entry, in slot order.
    public var references: [(Ref, ReferenceEntry)] {
        slots.enumerated().compactMap { i, s in s.entry.map { (Ref(slot: UInt32(i), generation: s.generation), $0) } }
    }
}

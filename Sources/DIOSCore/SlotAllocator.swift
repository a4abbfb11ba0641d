/// The bookkeeping every table of generation-named slots shares: a task's
/// reference table (`Ref`), an instance's objects (`ObjectID`) and its tasks
/// (`TaskID`). A name is a slot number and a generation. A released slot goes
/// on the free list and its generation moves on, so every name issued for it
/// before fails; the next insert reuses it under the new generation.
///
/// The tables keep their slots themselves (the objects' in raw memory the data
/// path reads in place, the others in arrays); this is the one place that
/// says which slot an insert takes and which generation a released slot gets.
public struct SlotAllocator: Sendable {
    /// The generation of a slot the table has just appended.
    public static let firstGeneration: UInt32 = 1

    @usableFromInline var free: [UInt32] = []

    public init(reserve: Int = 0) { free.reserveCapacity(reserve) }

    /// A released slot for the next insert, or nil: the table appends a new
    /// one (at `firstGeneration`).
    @inlinable public mutating func reusable() -> UInt32? { free.popLast() }

    /// Puts `slot` back for reuse; returns the generation it has from now on
    /// (the one after `generation`, skipping 0, which names nothing).
    @inlinable public mutating func release(_ slot: UInt32, generation: UInt32) -> UInt32 {
        free.append(slot)
        let next = generation &+ 1
        return next == 0 ? Self.firstGeneration : next
    }

    /// Released slots waiting for reuse.
    @inlinable public var freeCount: Int { free.count }
}

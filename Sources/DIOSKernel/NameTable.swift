#if canImport(Glibc)
import Glibc
#endif
import CLinux
import DIOSCore

/// This instance's table of names: name → the instances of that object held
/// here. (The replicated name service of DESIGN §7 grows from this.)
///
/// Most names have exactly one instance, so the first is stored inline and
/// only further ones go to an array: `create` and `delete` of an ordinary
/// object allocate nothing here once the dictionary has grown.
struct NameTable {
    struct Instances {
        var first: ObjectID
        var more: [ObjectID] = []

        var all: [ObjectID] { [first] + more }
    }

    private(set) var entries: [Name: Instances] = [:]

    init(reserve: Int) { entries.reserveCapacity(reserve) }

    var count: Int { entries.count }

    mutating func insert(_ name: Name, _ object: ObjectID) {
        if entries[name] == nil {
            entries[name] = Instances(first: object)
        } else {
            entries[name]!.more.append(object)
        }
    }

    mutating func remove(_ name: Name, _ object: ObjectID) {
        guard var instances = entries[name] else { return }
        if instances.first == object {
            guard let next = instances.more.first else {
                entries.removeValue(forKey: name)
                return
            }
            instances.first = next
            instances.more.removeFirst()
        } else {
            instances.more.removeAll { $0 == object }
        }
        entries[name] = instances
    }

    /// Every instance of `name` held here.
    func instances(of name: Name) -> [ObjectID] { entries[name]?.all ?? [] }

    /// Calls `body` with each instance of `name` held here, without building an array.
    func forEach(of name: Name, _ body: (ObjectID) -> Void) {
        // By index, reading the entry in place: copying `Instances` out would
        // retain and release its array on every lookup.
        guard let i = entries.index(forKey: name) else { return }
        body(entries.values[i].first)
        guard !entries.values[i].more.isEmpty else { return }
        for o in entries.values[i].more { body(o) }
    }

    /// The first instance of `name` satisfying `predicate`, without building an array.
    func first(of name: Name, where predicate: (ObjectID) -> Bool) -> ObjectID? {
        guard let e = entries[name] else { return nil }
        if predicate(e.first) { return e.first }
        return e.more.first(where: predicate)
    }
}

/// Fresh names from the kernel's CSPRNG, 128 at a time: one `getrandom(2)`
/// per 4 KiB instead of one system call per 64 bits.
struct NameSource {
    private var pool = [UInt64](repeating: 0, count: 512)
    private var next = 512

    mutating func fresh() -> Name {
        if next + 4 > pool.count { refill() }
        defer { next += 4 }
        return Name(words: (pool[next], pool[next + 1], pool[next + 2], pool[next + 3]))
    }

    private mutating func refill() {
        pool.withUnsafeMutableBytes { bytes in
            var filled = 0
            while filled < bytes.count {
                let n = clinux_getrandom(bytes.baseAddress! + filled, bytes.count - filled)
                if n > 0 {
                    filled += n
                } else if errno != EINTR {
                    // No getrandom: fall back to the standard library's generator.
                    var rng = SystemRandomNumberGenerator()
                    for i in stride(from: filled / 8 * 8, to: bytes.count, by: 8) {
                        bytes.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self)
                    }
                    filled = bytes.count
                }
            }
        }
        next = 0
    }
}

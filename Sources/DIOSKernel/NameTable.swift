import CLinux
import DIOSCore

#if canImport(Glibc)
import Glibc
#endif

/// This instance's table of names: name → the instances of that object held
/// here. (The replicated name service of DESIGN §7 grows from this.)
///
/// Most names have exactly one instance: it is kept in `firsts`, a dictionary
/// of plain values, so a lookup hashes once and copies no array; the rare
/// further instances (well-known names) go to `extras`, consulted only when
/// it holds anything. `create` and `delete` of an ordinary object allocate
/// nothing here once the dictionary has grown.
struct NameTable {
    private var firsts: [Name: ObjectID] = [:]
    private var extras: [Name: [ObjectID]] = [:]

    init(reserve: Int) { firsts.reserveCapacity(reserve) }

    var count: Int { firsts.count }

    mutating func insert(_ name: Name, _ object: ObjectID) {
        if firsts[name] == nil {
            firsts[name] = object
        } else {
            extras[name, default: []].append(object)
        }
    }

    mutating func remove(_ name: Name, _ object: ObjectID) {
        guard let first = firsts[name] else { return }
        if first == object {
            if var more = extras[name], !more.isEmpty {
                firsts[name] = more.removeFirst()
                extras[name] = more.isEmpty ? nil : more
            } else {
                firsts.removeValue(forKey: name)
            }
        } else if var more = extras[name] {
            more.removeAll { $0 == object }
            extras[name] = more.isEmpty ? nil : more
        }
    }

    /// Every instance of `name` held here.
    func instances(of name: Name) -> [ObjectID] {
        var all: [ObjectID] = []
        forEach(of: name) { all.append($0) }
        return all
    }

    /// Calls `body` with each instance of `name` held here, without building an array.
    func forEach(of name: Name, _ body: (ObjectID) -> Void) {
        guard let first = firsts[name] else { return }
        body(first)
        guard !extras.isEmpty, let more = extras[name] else { return }
        for o in more { body(o) }
    }

    /// The first instance of `name` held here, if any (`lookup`'s fast path:
    /// no closure, so the caller reads the table in place).
    func primary(of name: Name) -> ObjectID? { firsts[name] }

    /// The further instances of `name` held here (well-known names only), if any.
    func others(of name: Name) -> [ObjectID]? { extras.isEmpty ? nil : extras[name] }

    /// The first instance of `name` satisfying `predicate`, without building an array.
    func first(of name: Name, where predicate: (ObjectID) -> Bool) -> ObjectID? {
        guard let first = firsts[name] else { return nil }
        if predicate(first) { return first }
        return extras[name]?.first(where: predicate)
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

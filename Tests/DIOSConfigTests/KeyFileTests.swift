import DIOSConfig
import DIOSWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The cluster's secret on disk, and the cluster file's `security` block.
@Suite struct KeyFileTests {
    static let nodes = "nodes:\n  - {id: 0, address: 127.0.0.1, port: 7400, cores: [0]}\n"

    static func scratch(_ tag: String) -> String { "/tmp/dios-keytest-\(getpid())-\(tag)" }

    @Test func aKeyIsMadeOnlyItsOwnerCanReadAndItReadsBack() throws {
        let path = Self.scratch("made")
        defer { unlink(path) }
        let made = try KeyFile.generate(path)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try KeyFile.load(path) == made)
        #expect(try String(contentsOfFile: path, encoding: .utf8).count == 65)
        // Not replaced unless asked; replaced, it is another secret.
        #expect(throws: ConfigError.self) { try KeyFile.generate(path) }
        #expect(try KeyFile.load(path) == made)
        let again = try KeyFile.generate(path, replacing: true)
        let reread = try KeyFile.load(path)
        #expect(again != made && reread == again)
    }

    @Test func aKeyFileOpenToOthersMissingOrMalformedIsRefusedClearly() throws {
        let path = Self.scratch("bad")
        defer { unlink(path) }
        #expect(throws: ConfigError.self) { try KeyFile.load(path) }
        try KeyFile.generate(path)
        chmod(path, 0o644)
        do {
            _ = try KeyFile.load(path)
            Issue.record("a key file others can read was taken")
        } catch {
            #expect("\(error)".contains("open to others (mode 644): chmod 600 \(path)"), "\(error)")
        }
        chmod(path, 0o600)
        try "not a key\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: ConfigError.self) { try KeyFile.load(path) }
        #expect(KeyFile.parse(String(repeating: "ab", count: 32) + "\n")?.bytes == [UInt8](repeating: 0xAB, count: 32))
        #expect(KeyFile.parse(String(repeating: "ab", count: 31)) == nil)
        #expect(KeyFile.parse(String(repeating: "zz", count: 32)) == nil)
    }

    @Test func framesAreAuthenticatedByDefaultAndTheKeyIsBesideTheFile() throws {
        let file = try ClusterFile.parse(Self.nodes)
        #expect(file.frames == .authenticated)
        #expect(file.keyPath(for: "/etc/dios/rack.yaml") == "/etc/dios/rack.key")
        let named = try ClusterFile.parse("security: {frames: encrypted, key_file: secret/k}\n" + Self.nodes)
        #expect(named.frames == .encrypted)
        #expect(named.keyPath(for: "/etc/dios/rack.yaml") == "/etc/dios/secret/k")
        let absolute = try ClusterFile.parse("security: {key_file: /k}\n" + Self.nodes)
        #expect(absolute.keyPath(for: "/etc/dios/rack.yaml") == "/k")
        #expect(try ClusterFile.parse("security: {frames: plain}\n" + Self.nodes).security(for: "/nowhere.yaml") == nil)
        #expect(throws: ConfigError.self) { try ClusterFile.parse("security: {frames: secret}\n" + Self.nodes) }
        #expect(throws: ConfigError.self) { try ClusterFile.parse("security: {cipher: aes}\n" + Self.nodes) }
        // Protected frames without a key file: refused, naming the fix.
        do {
            _ = try file.security(for: Self.scratch("none") + ".yaml")
            Issue.record("a cluster without its key file was given a secret")
        } catch {
            #expect("\(error)".contains("dios cluster keygen"), "\(error)")
        }
    }
}

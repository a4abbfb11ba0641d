import DIOS
import DIOSConfig
import DIOSWire
import Testing

@Suite struct NodeFileTests {
    @Test func parsesAFullFile() throws {
        let file = try NodeFile.parse(
            """
            node: 3
            cores: [0, 1]
            pin: false
            arena_mib: 32
            idle:
              policy: adaptive
              spins: 10
              yields: 5
              max_sleep_us: 1000
            log_level: debug
            control_socket: /tmp/x.sock
            """)
        #expect(file.node == 3)
        #expect(file.cores == [0, 1])
        #expect(file.pin == false)
        #expect(file.arenaMiB == 32)
        #expect(file.idle == .adaptive(spins: 10, yields: 5, maxSleep: .microseconds(1000)))
        #expect(file.logLevel == .debug)
        #expect(file.controlSocket == "/tmp/x.sock")
        let configuration = NodeConfiguration(file, logger: .init(label: "t"))
        #expect(configuration.instanceCount == 2)
        #expect(configuration.arenaSize == 32 << 20)
    }

    @Test func defaultsWhenKeysAreMissing() throws {
        #expect(try NodeFile.parse("node: 1").idle == .adaptive)
        #expect(try NodeFile.parse("node: 1").controlSocketMode == 0o600)
        #expect(try NodeFile.parse(#"control_socket_mode: "0660""#).controlSocketMode == 0o660)
        #expect(try NodeFile.parse("idle: {policy: busy}").idle == .busy)
        #expect(try NodeFile.parse("node: 1").metricsListen == nil)
        #expect(
            try NodeFile.parse(#"metrics: {listen: "127.0.0.1:9464"}"#).metricsListen
                == PeerAddress("127.0.0.1", port: 9464))
    }

    @Test func theShippedFileParses() throws {
        let file = try NodeFile.load(
            path: #filePath.replacingOccurrences(
                of: "Tests/DIOSConfigTests/NodeFileTests.swift", with: "config/node.yaml"))
        #expect(file.cores == [0, 1])
    }

    @Test(arguments: [
        ("cores: []", "cores must be distinct"),
        ("cores: [0, 0]", "cores must be distinct"),
        ("arena_mib: 0", "arena_mib must be positive"),
        ("idle: {policy: lazy}", "idle.policy must be busy or adaptive"),
        ("log_level: loud", "unknown log_level"),
        ("corez: [1]", "unknown key corez"),
        ("idle: {spin: 3}", "unknown key spin"),
        (#"control_socket_mode: "0666""#, "lets every user connect"),
        (#"control_socket_mode: "0400""#, "must let its owner read and write"),
        (#"control_socket_mode: "rw""#, "octal permission bits"),
        (#"metrics: {listen: "localhost:9464"}"#, "metrics.listen must be a dotted IPv4 address and a port"),
        (#"metrics: {listen: "127.0.0.1"}"#, "metrics.listen must be a dotted IPv4 address and a port"),
        (#"metrics: {listen: "127.0.0.1:70000"}"#, "metrics.listen must be"),
        (#"metrics: {port: 1}"#, "unknown key port"),
        // Values of the wrong kind: where, and what was wanted there, in the file's terms.
        ("node: -1", "node: expected an integer from 0 to 65535"),
        ("cores: zero", "cores: expected a list"),
        ("cores: [0, one]", "cores[1]: expected an integer"),
        ("pin: maybe", "pin: expected true or false"),
        ("arena_mib: lots", "arena_mib: expected an integer"),
        ("idle: lazy", "idle: expected a mapping"),
        ("idle: {spins: [1]}", "idle.spins: expected a single value"),
        // Not YAML at all: the parser's own words, with the place.
        ("cores: [0", "not valid YAML: "),
        ("node: 0\nnode: 1", "duplicated key(s): 'node'"),
    ])
    func refusesBadFiles(text: String, mentions: String) {
        do {
            _ = try NodeFile.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(mentions), "\(error)")
        }
    }

    @Test func unreadableFile() {
        #expect(throws: ConfigError.unreadable("/nonexistent/node.yaml")) {
            try NodeFile.load(path: "/nonexistent/node.yaml")
        }
    }
}

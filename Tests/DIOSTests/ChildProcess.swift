import Foundation

/// How tests start the processes they run (`diosd`, `dios`).
enum ChildProcess {
    /// The test's own environment with Swift's crash backtracer off. A `diosd`
    /// that crashed as it exited (stop 18, since mended) left `swift-backtrace`
    /// hung for good holding the descriptors it inherited, the pipe Foundation
    /// watches for the child's end among them, and the test waited forever for
    /// the child. With it off, a crash ends the child at once and the test
    /// sees its signal.
    static let environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
}

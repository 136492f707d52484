import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished subprocess left: its exit status (or the signal that ended it), stdout and stderr.
public struct ProcessResult {
    public var status: Int32
    public var out: String
    public var err: String
    /// True when the watchdog killed it (it ran past its time limit).
    public var timedOut: Bool
}

/// Runs `executable` with `args` to the end. Both pipes are drained at once (a child that fills one pipe while the
/// test reads the other cannot deadlock), `input` is written to stdin and closed, and a child still running after
/// `timeout` seconds is killed, so a hang fails the test that caused it instead of stalling the whole suite.
public func runProcess(
    _ executable: String, _ args: [String], environment: [String: String]? = nil, input: Data? = nil,
    timeout: Double = 600
) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let o = Pipe(), e = Pipe(), i = Pipe()
    p.standardOutput = o
    p.standardError = e
    p.standardInput = input == nil ? FileHandle.nullDevice : i
    try p.run()
    let errData = Box()
    let errDone = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        errData.set(e.fileHandleForReading.readDataToEndOfFile())
        errDone.signal()
    }
    if let input {
        Thread.detachNewThread {
            i.fileHandleForWriting.write(input)
            try? i.fileHandleForWriting.close()
        }
    }
    let killed = Box()
    let watchdog = DispatchWorkItem {
        if p.isRunning {
            killed.set(Data([1]))
            kill(p.processIdentifier, SIGKILL)
        }
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
    let outData = o.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    p.waitUntilExit()
    watchdog.cancel()
    return ProcessResult(
        status: p.terminationStatus, out: String(decoding: outData, as: UTF8.self),
        err: String(decoding: errData.value, as: UTF8.self), timedOut: !killed.value.isEmpty)
}

/// Bytes shared between the reader threads and the caller.
private final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    var value: Data { lock.lock(); defer { lock.unlock() }; return data }
}

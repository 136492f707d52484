import Foundation

/// Samples the process's anonymous resident memory (`RssAnon` in /proc/self/status) on a background
/// thread, to report the peak; file-backed pages of mapped inputs are not counted.
public final class MemoryMonitor: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    private var running = true
    private var thread: Thread?

    public init(intervalMs: Int = 10) {
        let t = Thread { [weak self] in
            while let s = self, s.isRunning {
                s.sample()
                usleep(UInt32(intervalMs * 1000))
            }
        }
        thread = t
        t.start()
    }
    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }
    public func sample() {
        let v = MemoryMonitor.current()
        lock.lock(); peak = max(peak, v.anon); lock.unlock()
    }
    /// Peak anonymous RSS in bytes so far.
    public var peakAnonBytes: Int { sample(); lock.lock(); defer { lock.unlock() }; return peak }
    public func stop() { lock.lock(); running = false; lock.unlock() }

    /// Current (anonymous RSS, high-water RSS) in bytes, from /proc/self/status (0 where unavailable).
    public static func current() -> (anon: Int, hwm: Int) {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        var anon = 0, hwm = 0
        for line in s.split(separator: "\n") {
            if line.hasPrefix("RssAnon:") { anon = kb(line) } else if line.hasPrefix("VmHWM:") { hwm = kb(line) }
        }
        return (anon, hwm)
    }
    static func kb(_ line: Substring) -> Int {
        Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0").map { $0 * 1024 } ?? 0
    }
}

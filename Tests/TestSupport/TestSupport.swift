import Foundation

/// The committed fixtures folder (Tests/Fixtures).
public let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// Every temporary folder of this test process, removed when the process exits (set LFM_KEEP_TMP=1 to keep them).
nonisolated(unsafe) private var created: [String] = []
private let createdLock = NSLock()
private let cleanup: Void = {
    atexit {
        guard ProcessInfo.processInfo.environment["LFM_KEEP_TMP"] == nil else { return }
        createdLock.lock(); let dirs = created; createdLock.unlock()
        for d in dirs { try? FileManager.default.removeItem(atPath: d) }
    }
}()

/// A fresh temporary folder (removed at exit).
public func tmpDir(_ name: String = "t") -> String {
    _ = cleanup
    let p = NSTemporaryDirectory() + "lfm-\(name)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    createdLock.lock(); created.append(p); createdLock.unlock()
    return p
}

import Foundation
import Formats

/// The committed fixtures folder (Tests/Fixtures).
public let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

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

nonisolated(unsafe) private var materializedFolders: [String: String] = [:]
private let materializedLock = NSLock()

/// A copy of a fixture checkpoint (`Tests/Fixtures/<fixture>/model`) with its detokenizer weights regenerated from
/// the committed recipe, made once per process. Callers that modify it copy it first.
public func materializedFixture(_ fixture: String) throws -> String {
    materializedLock.lock(); defer { materializedLock.unlock() }
    if let f = materializedFolders[fixture] { return f }
    let d = tmpDir("ckpt") + "/\(fixture)"
    try FileManager.default.copyItem(atPath: fixtures + "/\(fixture)/model", toPath: d)
    _ = try DetokenizerRecipe.materialize(checkpoint: d)
    materializedFolders[fixture] = d
    return d
}

import Foundation

/// The committed fixtures folder (Tests/Fixtures).
public let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// A fresh temporary folder.
public func tmpDir(_ name: String = "t") -> String {
    let p = NSTemporaryDirectory() + "lfm-\(name)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

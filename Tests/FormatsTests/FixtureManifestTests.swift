import XCTest
import TestSupport
import Foundation
@testable import Formats

/// The committed fixtures are exactly what their manifests (written by scripts/reference/make_tiny.py) say.
final class FixtureManifestTests: XCTestCase {
    func testEveryFixtureFileMatchesItsManifest() throws {
        for name in ["tiny-a", "tiny-b"] {
            let dir = fixtures + "/" + name
            let m = try JSONValue.parse(
                data: try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")), file: name)
            let files = try XCTUnwrap(m["files"]?.arrayValue)
            XCTAssertGreaterThanOrEqual(files.count, 10)
            var listed = Set<String>()
            for f in files {
                let path = try XCTUnwrap(f["path"]?.stringValue)
                listed.insert(path)
                let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/" + path)
                XCTAssertEqual(attrs[.size] as? Int, f["bytes"]?.intValue, path)
                XCTAssertEqual(try Hashing.sha256(file: dir + "/" + path), f["sha256"]?.stringValue, "\(name)/\(path)")
            }
            let present = Set(
                try FileManager.default.subpathsOfDirectory(atPath: dir).filter { p in
                    var d: ObjCBool = false
                    FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &d)
                    return !d.boolValue && p != "manifest.json"
                })
            XCTAssertEqual(present, listed, "\(name): files not in the manifest")
        }
    }
}

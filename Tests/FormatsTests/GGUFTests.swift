import XCTest
import TestSupport
import Foundation
@testable import Formats

final class GGUFTests: XCTestCase {
    func makeFile(metadata: [(String, GGUFValue)], tensors: [GGUFTensorInfo], fill: UInt8 = 7) -> (String, Data) {
        var ts = tensors
        let size = GGUF.layout(&ts, alignment: 64)
        var d = GGUF.header(metadata: metadata, tensors: ts)
        d.append(Data(count: (64 - d.count % 64) % 64))
        d.append(Data(repeating: fill, count: size))
        let p = tmpDir("gguf") + "/a.gguf"
        FileManager.default.createFile(atPath: p, contents: d)
        return (p, d)
    }

    func testRoundTrip() throws {
        let meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("lfm2-audio")), ("general.alignment", .uint32(64)),
            ("a.f", .float32(1.5)), ("a.b", .bool(true)), ("a.i", .int64(-3)), ("a.s", .strings(["x", "yé"])),
            ("a.u", .uint32s([1, 2, 3])), ("a.d", .float64(2.25)), ("a.u8", .uint8(9)),
        ]
        let (p, _) = makeFile(
            metadata: meta,
            tensors: [
                GGUFTensorInfo(name: "w", dims: [64, 3], type: .q8_0), GGUFTensorInfo(name: "v", dims: [5], type: .f32),
                GGUFTensorInfo(name: "q", dims: [32, 2, 2], type: .q4_0),
            ])
        let g = try GGUFFile(path: p)
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.metadataKeys, meta.map(\.0))
        for (k, v) in meta { XCTAssertEqual(g.metadata[k], v, k) }
        XCTAssertEqual(g.tensors.map(\.name), ["w", "v", "q"])
        XCTAssertEqual(g.tensor("w")?.byteCount, 2 * 34 * 3)
        XCTAssertEqual(g.tensor("q")?.shape, [2, 2, 32])
        XCTAssertEqual(g.tensors.map { $0.offset % 64 }, [0, 0, 0])
        XCTAssertEqual(g.bytes(of: g.tensor("v")!).count, 20)
    }

    func expectError(_ d: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        let p = tmpDir("bad") + "/b.gguf"
        FileManager.default.createFile(atPath: p, contents: d)
        XCTAssertThrowsError(try GGUFFile(path: p), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(fragment), "expected '\(fragment)' in \(e)", file: file, line: line)
            XCTAssertTrue("\(e)".contains(p), file: file, line: line)
        }
    }

    func testHostileHeaders() {
        let (_, good) = makeFile(
            metadata: [("k", .string("v"))], tensors: [GGUFTensorInfo(name: "w", dims: [32, 2], type: .q8_0)])
        expectError(Data("GGUX".utf8) + good.dropFirst(4), "bad magic")
        expectError(good.prefix(30), "truncated")
        expectError(good.prefix(good.count - 100), "truncated")
        var v = good; v[4] = 9
        expectError(v, "version 9")
        var counts = good; counts.replaceSubrange(8..<16, with: Array(repeating: 0xff, count: 8))
        expectError(counts, "impossible")
        // a string length far past the end
        var s = good; s.replaceSubrange(24..<32, with: [0, 0, 0, 0, 0, 0, 0, 0x10])
        expectError(s, "runs past the end")
        // unknown tensor type id
        var (_, t) = makeFile(metadata: [], tensors: [GGUFTensorInfo(name: "w", dims: [4], type: .f32)])
        let typeOffset = 24 + 8 + 1 + 4 + 8
        t.replaceSubrange(typeOffset..<(typeOffset + 4), with: [99, 0, 0, 0])
        expectError(t, "unknown ggml type")
        // bad alignment value
        let (_, a) = makeFile(metadata: [("general.alignment", .uint32(48))], tensors: [])
        expectError(a, "power of two")
    }

    func testOverlappingAndMisalignedTensors() throws {
        var ts = [
            GGUFTensorInfo(name: "a", dims: [16], type: .f32, offset: 0),
            GGUFTensorInfo(name: "b", dims: [16], type: .f32, offset: 0),
        ]
        var d = GGUF.header(metadata: [], tensors: ts)
        d.append(Data(count: (64 - d.count % 64) % 64)); d.append(Data(count: 128))
        expectError(d, "overlaps")
        ts[1].offset = 70
        d = GGUF.header(metadata: [], tensors: ts)
        d.append(Data(count: (64 - d.count % 64) % 64)); d.append(Data(count: 256))
        expectError(d, "not aligned")
    }
}

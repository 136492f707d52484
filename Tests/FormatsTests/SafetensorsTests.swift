import XCTest
import TestSupport
import Foundation
@testable import Formats

/// Builds a raw safetensors file from a header dictionary and a data blob.
func rawSafetensors(header: String, data: [UInt8], lengthOverride: UInt64? = nil) -> Data {
    var d = Data()
    var n = (lengthOverride ?? UInt64(header.utf8.count)).littleEndian
    withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
    d.append(contentsOf: Array(header.utf8))
    d.append(contentsOf: data)
    return d
}

final class SafetensorsTests: XCTestCase {
    func write(_ d: Data) -> String {
        let p = tmpDir("st") + "/x.safetensors"
        FileManager.default.createFile(atPath: p, contents: d)
        return p
    }

    func expectError(_ d: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        let p = write(d)
        XCTAssertThrowsError(try SafetensorsFile(path: p), file: file, line: line) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.contains(p), "message should name the file: \(msg)", file: file, line: line)
            XCTAssertTrue(msg.contains(fragment), "expected '\(fragment)' in: \(msg)", file: file, line: line)
        }
    }

    func testReadsFixtureCheckpoint() throws {
        let f = try SafetensorsFile(path: fixtures + "/tiny-a/model/model.safetensors")
        XCTAssertGreaterThan(f.tensors.count, 100)
        let e = try XCTUnwrap(f.tensors["lfm.embed_tokens.weight"])
        XCTAssertEqual(e.dtype, .bf16)
        XCTAssertEqual(e.shape, [512, 64])
        XCTAssertEqual(e.byteCount, 512 * 64 * 2)
    }

    func testRoundTripWriter() throws {
        let p = tmpDir("w") + "/a.safetensors"
        let vals: [Float] = [1, -2, 3.5, 0]
        try SafetensorsWriter.write(
            [.init(name: "a", dtype: .f32, shape: [2, 2], data: vals.withUnsafeBufferPointer { Data(buffer: $0) })],
            metadata: ["format": "pt"], to: p)
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(f.metadata["format"], "pt")
        let t = try XCTUnwrap(f.tensors["a"])
        XCTAssertEqual(Array(t.bytes.bindMemory(to: Float.self)), vals)
    }

    func testHostileInputs() {
        let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        expectError(Data([1, 2, 3]), "truncated")
        expectError(Data(), "truncated")
        expectError(rawSafetensors(header: good, data: [], lengthOverride: 1 << 40), "100 MB")
        expectError(rawSafetensors(header: good, data: [], lengthOverride: 4096), "truncated")
        expectError(rawSafetensors(header: "{not json", data: []), "invalid JSON")
        expectError(rawSafetensors(header: "[1,2]", data: []), "not a JSON object")
        expectError(rawSafetensors(header: String(repeating: "[", count: 5000), data: []), "nesting")
        expectError(
            rawSafetensors(
                header: #"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)),
            "unknown dtype 'F33'")
        expectError(
            rawSafetensors(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#, data: Array(repeating: 0, count: 8)
            ), "past the end")
        expectError(
            rawSafetensors(
                header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)),
            "needs 12")
        expectError(
            rawSafetensors(
                header:
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                    + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                data: Array(repeating: 0, count: 12)), "overlaps")
        expectError(
            rawSafetensors(
                header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)
            ), "non-negative")
        expectError(
            rawSafetensors(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                data: Array(repeating: 0, count: 8)),
            "not ordered")
        expectError(
            rawSafetensors(
                header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)), "larger than the file")
        expectError(
            rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[2]}}"#, data: Array(repeating: 0, count: 8)),
            "data_offsets")
        expectError(
            rawSafetensors(
                header:
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                    + #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)), "duplicate key")
        expectError(rawSafetensors(header: #"{"__metadata__":{"k":1}}"#, data: []), "__metadata__")
    }
}

final class JSONValueTests: XCTestCase {
    func testParsesEscapesAndNumbers() throws {
        let v = try JSONValue.parse(
            data: Data(#"{"s":"a\"b\\c\n\u00e9\ud83d\ude00","i":-12,"d":1.5e3,"t":true,"n":null,"a":[1,2]}"#.utf8),
            file: "x")
        XCTAssertEqual(v["s"]?.stringValue, "a\"b\\c\né😀")
        XCTAssertEqual(v["i"]?.intValue, -12)
        XCTAssertEqual(v["d"]?.doubleValue, 1500)
        XCTAssertEqual(v["t"]?.boolValue, true)
        XCTAssertEqual(v["n"], .null)
        XCTAssertEqual(v["a"]?.arrayValue?.count, 2)
    }
    func testRejectsMalformed() {
        for bad in ["", "{", "{\"a\":}", "[1,]", "\"\\ud800\"", "01x", "{\"a\":1}x", "\"\u{01}\"", "nul", "[\"\\q\"]"] {
            XCTAssertThrowsError(try JSONValue.parse(data: Data(bad.utf8), file: "f.json"), bad)
        }
        XCTAssertThrowsError(try JSONValue.parse(data: Data([0x22, 0xff, 0x22]), file: "f.json"))
    }
}

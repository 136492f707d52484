import XCTest
import TestSupport
import Foundation
@testable import Formats

/// Conversion is crash-safe: SIGKILL at random points never leaves a partial bundle under the destination name and
/// never touches the input; the next run removes the dead run's temporary file; a full disk (a file-size limit)
/// is a clear error with no output left; every single-bit flip of tensor data is caught by `verify`.
final class CrashSafetyTests: XCTestCase {
    func sha(_ dir: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for f in try FileManager.default.subpathsOfDirectory(atPath: dir) {
            var d: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + f, isDirectory: &d), !d.boolValue {
                out[f] = try Hashing.sha256(file: dir + "/" + f)
            }
        }
        return out
    }

    func testKilledConversionsLeaveNothingPartial() throws {
        let src = tmpDir("kill") + "/m"
        try FileManager.default.copyItem(atPath: fixtures + "/tiny-b/model", toPath: src)
        let input = try sha(src)
        let outDir = tmpDir("killout"), dest = outDir + "/b.gguf"
        let args = [src, "-o", dest, "--quant", "q8_0", "--threads", "2"]
        // The kill points are drawn inside the time a whole run takes on this machine (the fastest of three), so
        // they land mid-conversion however fast the machine is (a fixed 0-150 ms window let every run finish first
        // on a fast CI machine: the conversion takes about 30 ms).
        var whole = Double.infinity
        for _ in 0..<3 {
            let t0 = Date()
            XCTAssertEqual(try runTool("lfm-convert", args).0, 0)
            whole = min(whole, Date().timeIntervalSince(t0))
            try FileManager.default.removeItem(atPath: dest)
        }
        let window = UInt32(max(1_000, whole * 0.7 * 1e6))
        var rng = SystemRandomNumberGenerator()
        var killedMidway = 0
        for _ in 0..<8 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool("lfm-convert"))
            p.arguments = args
            p.standardOutput = Pipe(); p.standardError = Pipe()
            try p.run()
            usleep(UInt32.random(in: 0...window, using: &rng))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal { killedMidway += 1 }
            if FileManager.default.fileExists(atPath: dest) {
                // only a complete bundle can be there (the run finished before the kill)
                XCTAssertEqual(try runTool("lfm-convert", ["verify", dest]).0, 0)
                try FileManager.default.removeItem(atPath: dest)
            }
        }
        print("killed mid-conversion: \(killedMidway) of 8 (kill points within \(window) us)")
        XCTAssertGreaterThan(killedMidway, 0, "no run was killed before it finished (window \(window) us)")
        XCTAssertEqual(try sha(src), input, "the input is never modified")
        // the next run cleans up the dead runs' temporary files and succeeds
        let (rc, _, err) = try runTool("lfm-convert", [src, "-o", dest, "--quant", "q8_0"])
        XCTAssertEqual(rc, 0, err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outDir), ["b.gguf"])
    }

    func testFullDiskIsAClearError() throws {
        let outDir = tmpDir("full"), dest = outDir + "/b.gguf"
        let cmd = "ulimit -f 2048; exec '\(tool("lfm-convert"))' '\(fixtures)/tiny-b/model' -o '\(dest)' --quant f32"
        let (rc, _, err) = try runTool("/bin/sh", ["-c", cmd])
        XCTAssertEqual(rc, 1, err)
        XCTAssertTrue(err.contains(dest) && (err.contains("File too large") || err.contains("write")), err)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: outDir), [], "no partial output, no temporary file")
    }

    func testEveryBitFlipOfTensorDataIsCaught() throws {
        let dir = tmpDir("flip"), path = dir + "/b.gguf"
        XCTAssertEqual(try runTool("lfm-convert", [fixtures + "/tiny-b/model", "-o", path, "--quant", "q4_0"]).0, 0)
        let clean = try Data(contentsOf: URL(fileURLWithPath: path))
        let g = try GGUFFile(path: path)
        var rng = SeededRandom(seed: 5)
        for i in 0..<12 {
            let t = g.tensors[Int(rng.next() % UInt64(g.tensors.count))]
            let byte = g.dataOffset + t.offset + Int(rng.next() % UInt64(t.byteCount))
            var d = clean; d[byte] ^= UInt8(1 << (rng.next() % 8))
            let p = dir + "/f\(i).gguf"
            try d.write(to: URL(fileURLWithPath: p))
            let (rc, out, err) = try runTool("lfm-convert", ["verify", p])
            XCTAssertEqual(rc, 1, "flip in \(t.name) not caught")
            XCTAssertTrue((out + err).contains(t.name), "\(t.name): \(out) \(err)")
            try FileManager.default.removeItem(atPath: p)
        }
    }
}

extension CrashSafetyTests {
    /// Any single bit flipped in the header (metadata or tensor table) is refused at open by `lfm-run` and reported
    /// by `verify`: the GGUF parser rejects it or the header checksum does not match.
    func testEveryHeaderBitFlipIsRefusedAtOpen() throws {
        let dir = tmpDir("hflip"), path = dir + "/b.gguf"
        XCTAssertEqual(try runTool("lfm-convert", [fixtures + "/tiny-b/model", "-o", path, "--quant", "q8_0"]).0, 0)
        let clean = try Data(contentsOf: URL(fileURLWithPath: path))
        let g = try GGUFFile(path: path)
        XCTAssertEqual(HeaderChecksum.check(g), true)
        var rng = SeededRandom(seed: 9)
        for i in 0..<16 {
            let byte = Int(rng.next() % UInt64(g.headerEnd))
            var d = clean; d[byte] ^= UInt8(1 << (rng.next() % 8))
            let p = dir + "/h\(i).gguf"
            try d.write(to: URL(fileURLWithPath: p))
            let (rc, _, err) = try runTool("lfm-run", ["text", "--bundle", p, "--prompt", "x", "--max-tokens", "1"])
            XCTAssertEqual(rc, 1, "flip at header byte \(byte) was not refused: \(err)")
            XCTAssertTrue(err.contains(p), err)
            try FileManager.default.removeItem(atPath: p)
        }
    }
}

struct SeededRandom {
    var s: UInt64
    init(seed: UInt64) { s = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
}

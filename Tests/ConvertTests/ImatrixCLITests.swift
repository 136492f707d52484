import XCTest
import TestSupport
import Foundation
@testable import Formats
import Quantize

/// `lfm-convert imatrix` on the tiny fixture checkpoint, then `--imatrix` on convert and export-llama.
final class ImatrixCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String, String) { try runTool("lfm-convert", args) }

    /// A calibration folder: one text prompt, the fixture speech clip twice (ASR and spoken chat, one chat per
    /// decoder), two TTS sentences.
    func calibrationDir() throws -> String {
        let d = tmpDir("calib")
        try "Say something about the weather.".write(toFile: d + "/hello.txt", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: fixtures + "/audio/speech.wav", toPath: d + "/speech.wav")
        try FileManager.default.copyItem(atPath: fixtures + "/audio/speech.wav", toPath: d + "/speech2.wav")
        try FileManager.default.createDirectory(atPath: d + "/tts", withIntermediateDirectories: true)
        try "Good morning.\n\nThe sea is calm tonight.\n".write(
            toFile: d + "/tts/sentences.txt", atomically: true, encoding: .utf8)
        return d
    }

    func testImatrixCoversEveryComponentAndFeedsConversion() throws {
        let calib = try calibrationDir()
        let ckpt = try materializedFixture("tiny-a")  // with its detokenizer weights
        let out = tmpDir("imx")
        let imx = out + "/tiny.imatrix.gguf"
        let (rc, stdout, err) = try run([
            "imatrix", ckpt, "--calibrate", calib, "-o", imx, "--threads", "2",
            "--max-tokens", "24", "--json",
        ])
        XCTAssertEqual(rc, 0, err)
        let j = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any]
        XCTAssertEqual(j["inputs"] as? Int, 1 + 2 * 2 + 2)
        // only the output and no scratch bundle are left behind
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), ["tiny.imatrix.gguf"])
        let m = try ImportanceMatrix(path: imx)
        XCTAssertEqual(m.datasets.count, 1)
        // widths are the checkpoint's input widths (tensors read through the f32 bundle of a plain conversion)
        let f32 = out + "/f32.gguf"
        XCTAssertEqual(try run([ckpt, "-o", f32, "--quant", "f32"]).0, 0)
        let g = try GGUFFile(path: f32)
        var byEntry: [String: GGUFTensorInfo] = [:]
        for t in g.tensors where t.dims.count >= 2 {
            byEntry[ImatrixNames.entry(forBundle: t.name)] = t
        }
        for (name, e) in m.entries {
            let t = try XCTUnwrap(byEntry[name], "entry \(name) names no bundle matrix")
            XCTAssertEqual(e.sums.count, t.shape.dropFirst().reduce(1, *), name)
            XCTAssertGreaterThan(e.count, 0, name)
            XCTAssertTrue(e.sums.allSatisfy { $0.isFinite && $0 >= 0 }, name)
            XCTAssertTrue(e.sums.contains { $0 > 0 }, name)
        }
        // every component's matrices: backbone under llama.cpp names, the audio components under bundle names
        let names = Array(m.entries.keys)
        for must in [
            "blk.0.ffn_down.weight", "blk.0.shortconv.in_proj.weight", "depth_linear.weight",
        ] {
            XCTAssertNotNil(m.entries[must], must)
        }
        for prefix in ["blk.", "conformer.", "audio_adapter.", "depthformer.", "mimi.", "detokenizer."] {
            XCTAssertTrue(names.contains { $0.hasPrefix(prefix) }, "no entry for \(prefix)*")
        }
        XCTAssertFalse(names.contains { $0.hasPrefix("lfm.") })
        let attn = names.filter { $0.hasPrefix("blk.") && $0.hasSuffix("attn_q.weight") }
        XCTAssertFalse(attn.isEmpty)

        // convert and export with it
        let q = out + "/q4.gguf"
        let (rc2, _, err2) = try run([ckpt, "-o", q, "--quant", "q4_0", "--imatrix", imx])
        XCTAssertEqual(rc2, 0, err2)
        XCTAssertTrue(err2.contains("tensors weighted"), err2)
        XCTAssertEqual(try run(["verify", q, "--against", ckpt]).0, 0)
        let plain = out + "/q4-plain.gguf"
        XCTAssertEqual(try run([ckpt, "-o", plain, "--quant", "q4_0"]).0, 0)
        let a = try GGUFFile(path: q), b = try GGUFFile(path: plain)
        let w2 = try XCTUnwrap(a.tensor("lfm.layers.0.feed_forward.w2.weight"))
        XCTAssertEqual(w2.type, .q4_0)
        XCTAssertNotEqual(Array(a.bytes(of: w2)), Array(b.bytes(of: b.tensor(w2.name)!)), "weights changed nothing")
        // provenance: llama-quantize's keys and the file's hash, only where a matrix was used
        let sha = try Hashing.sha256(file: imx)
        func checkProvenance(_ g: GGUFFile) {
            XCTAssertEqual(g.metadata[BundleKeys.imatrixFile], .string(imx))
            XCTAssertEqual(g.metadata[BundleKeys.imatrixEntries], .int32(Int32(m.entries.count)))
            XCTAssertEqual(g.metadata[BundleKeys.imatrixChunks], .int32(Int32(m.chunkCount)))
            XCTAssertEqual(g.metadata[BundleKeys.imatrixDataset], .string(m.datasets.first ?? ""))
            XCTAssertEqual(g.metadata[BundleKeys.imatrixSHA256], .string(sha))
        }
        checkProvenance(a)
        XCTAssertNil(b.metadata[BundleKeys.imatrixFile])
        let (rc3, _, err3) = try run([
            "export-llama", ckpt, "-o", out + "/ll.gguf", "--quant", "q4_0", "--imatrix", imx,
        ])
        XCTAssertEqual(rc3, 0, err3)
        checkProvenance(try GGUFFile(path: out + "/ll.gguf"))

        // a file made for another model: a wrong width, then an unknown name; no output is written
        var wrong = m
        wrong.entries["blk.0.ffn_down.weight"]!.sums.removeLast()
        let bad = out + "/bad.imatrix.gguf"
        try wrong.write(to: bad, overwrite: true)
        let dest = out + "/never.gguf"
        let (rc4, _, err4) = try run([ckpt, "-o", dest, "--quant", "q4_0", "--imatrix", bad])
        XCTAssertEqual(rc4, 1)
        XCTAssertTrue(err4.contains("blk.0.ffn_down.weight") && err4.contains("columns"), err4)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest))
        wrong = m
        wrong.entries["blk.99.attn_q.weight"] = .init(sums: [1], count: 1)
        try wrong.write(to: bad, overwrite: true)
        let (rc5, _, err5) = try run(["export-llama", ckpt, "-o", dest, "--imatrix", bad])
        XCTAssertEqual(rc5, 1)
        XCTAssertTrue(err5.contains("blk.99.attn_q.weight"), err5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest))
        // an empty calibration folder is refused
        let (rc6, _, err6) = try run(["imatrix", ckpt, "--calibrate", tmpDir("e"), "-o", dest])
        XCTAssertEqual(rc6, 1)
        XCTAssertTrue(err6.contains("no calibration inputs"), err6)
    }
}

import XCTest
import TestSupport
import Foundation
import MiniRuntime
@testable import Formats

/// `lfm-run parity` on the committed reference dumps (made by scripts/reference/dump.py from the fixtures): f32 and
/// q8_0 bundles pass; a dump with one stage perturbed fails and names that stage first.
final class ParityCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String, String) { try runTool("lfm-run", args) }

    static func bundle(_ fixture: String, _ q: String) throws -> String {
        let dir = tmpDir("parity-\(fixture)-\(q)")
        try FileManager.default.copyItem(atPath: fixtures + "/\(fixture)/model", toPath: dir + "/m")
        _ = try DetokenizerRecipe.materialize(checkpoint: dir + "/m")
        let out = dir + "/b.gguf"
        let (rc, _, err) = try runTool("lfm-convert", [dir + "/m", "-o", out, "--quant", q])
        XCTAssertEqual(rc, 0, err)
        return out
    }

    func report(_ out: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
    }

    func testDumpsPassAndAPerturbedStageFails() throws {
        let dumps = fixtures + "/parity"
        let a32 = try Self.bundle("tiny-a", "f32"), b32 = try Self.bundle("tiny-b", "f32"),
            a8 = try Self.bundle("tiny-a", "q8_0")
        for (b, d) in [(a32, "chat-tiny-a"), (a32, "tts-tiny-a"), (b32, "asr-tiny-b"), (a8, "chat-tiny-a")] {
            let (rc, out, err) = try run([
                "parity", "--bundle", b, "--reference", "\(dumps)/\(d).safetensors", "--json", "--threads", "2",
            ])
            XCTAssertEqual(rc, 0, "\(d) \(b): \(out) \(err)")
            let r = try report(out)
            XCTAssertEqual(r["ok"] as? Bool, true)
            let rows = r["rows"] as! [[String: Any]]
            let stages = rows.map { $0["stage"] as! String }
            XCTAssertTrue(stages.contains("lfm.final_norm") && stages.contains("gen.text_logits"), "\(stages)")
            if d.hasPrefix("chat") {
                for s in [
                    "audio.mel", "audio.conformer_out", "audio.adapter_out", "gen.audio_frames", "decode.mimi_wave",
                    "decode.detok_wave",
                ] {
                    XCTAssertTrue(stages.contains(s), "\(d): \(s) missing")
                }
            }
            if b == a32 || b == b32 {
                for row in rows where row["steps"] != nil {
                    XCTAssertEqual(row["reproduced"] as? Int, row["steps"] as? Int, "\(d) \(row["stage"]!)")
                }
            } else {
                XCTAssertNotNil(
                    rows.first { $0["stage"] as? String == "gen.text_logits" }?["top1_agreement"],
                    "quantized: agreement reported")
            }
        }
        // the plain table names the stages and says ok
        let (rc, table, _) = try run(["parity", "--bundle", a32, "--reference", "\(dumps)/chat-tiny-a.safetensors"])
        XCTAssertEqual(rc, 0)
        XCTAssertTrue(table.contains("audio.conformer_out") && table.contains("parity: ok"), table)

        // perturb one stage of the dump: the conformer output
        let dir = tmpDir("perturbed")
        let src = "\(dumps)/chat-tiny-a.safetensors"
        var data = try Data(contentsOf: URL(fileURLWithPath: src))
        let st = try SafetensorsFile(path: src)
        let t = try XCTUnwrap(st.tensors["audio.conformer_out"])
        for i in stride(from: 0, to: t.byteCount, by: 4 * 7) {  // every 7th value × 1.05
            let o = t.offset + i
            var v = data.subdata(in: o..<(o + 4)).withUnsafeBytes { $0.loadUnaligned(as: Float.self) } * 1.05
            withUnsafeBytes(of: &v) { data.replaceSubrange(o..<(o + 4), with: $0) }
        }
        try data.write(to: URL(fileURLWithPath: dir + "/p.safetensors"))
        try FileManager.default.copyItem(atPath: "\(dumps)/chat-tiny-a.json", toPath: dir + "/p.json")
        let (rc2, out2, _) = try run(["parity", "--bundle", a32, "--reference", dir + "/p.safetensors", "--json"])
        XCTAssertEqual(rc2, 1)
        let r2 = try report(out2)
        XCTAssertEqual(r2["ok"] as? Bool, false)
        XCTAssertEqual(r2["first_failure"] as? String, "audio.conformer_out")
        let (_, table2, _) = try run(["parity", "--bundle", a32, "--reference", dir + "/p.safetensors"])
        XCTAssertTrue(table2.contains("first failing stage: audio.conformer_out"), table2)
        // a dump without its manifest is a clear error
        try FileManager.default.removeItem(atPath: dir + "/p.json")
        let (rc3, _, err3) = try run(["parity", "--bundle", a32, "--reference", dir + "/p.safetensors"])
        XCTAssertEqual(rc3, 1); XCTAssertTrue(err3.contains("manifest"), err3)
    }
}

import XCTest
import TestSupport
import Foundation
import MiniRuntime
@testable import Formats
@testable import Quantize

/// Fine-tuned checkpoints as liquid-audio's trainer writes them (Tests/Fixtures/finetune, made by
/// scripts/reference/make_finetune.py through accelerate's `save_model` and `save_state`), ties, and `--base`.
final class FinetuneTests: XCTestCase {
    static let ft = fixtures + "/finetune"

    /// The base of the fine-tune fixtures: its config.json plus tiny-a's tokenizer, Mimi and detokenizer files
    /// (detokenizer weights from their recipe), without model weights.
    static func baseFolder() throws -> String {
        let d = tmpDir("ft-base") + "/base"
        let fm = FileManager.default
        try fm.createDirectory(atPath: d, withIntermediateDirectories: true)
        for n in try fm.contentsOfDirectory(atPath: fixtures + "/tiny-a/model")
        where n != "model.safetensors" && n != "config.json" {
            try fm.copyItem(atPath: fixtures + "/tiny-a/model/" + n, toPath: d + "/" + n)
        }
        try fm.copyItem(atPath: ft + "/base/config.json", toPath: d + "/config.json")
        _ = try DetokenizerRecipe.materialize(checkpoint: d)
        return d
    }

    /// A copy of a fine-tune folder with the base's files copied beside the weights.
    static func merged(_ finetune: String, base: String) throws -> String {
        let d = tmpDir("ft-merged") + "/m"
        let fm = FileManager.default
        try fm.copyItem(atPath: finetune, toPath: d)
        for n in try fm.contentsOfDirectory(atPath: base) where !fm.fileExists(atPath: d + "/" + n) {
            try fm.copyItem(atPath: base + "/" + n, toPath: d + "/" + n)
        }
        return d
    }

    func convert(_ args: [String]) throws -> (String, [String: Any]) {
        let out = tmpDir("ft-out") + "/b.gguf"
        let (rc, so, se) = try runTool("lfm-convert", args + ["-o", out, "--quant", "f32", "--json", "--threads", "2"])
        XCTAssertEqual(rc, 0, se)
        return (out, (try? JSONSerialization.jsonObject(with: Data(so.utf8)) as? [String: Any]) ?? [:])
    }

    /// The reference's greedy streams (text, ASR, TTS, chat) on the fine-tuned weights, reproduced step by step.
    func checkStreams(_ bundle: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var total = 0
        for mode in ["text", "asr", "tts", "chat"] {
            let dump = Self.ft + "/goldens/\(mode)-\(name).safetensors"
            let (rc, out, err) = try runTool(
                "lfm-run", ["parity", "--bundle", bundle, "--reference", dump, "--json", "--threads", "2"])
            XCTAssertEqual(rc, 0, "\(mode)-\(name): \(out) \(err)", file: file, line: line)
            let r = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
            XCTAssertEqual(r["ok"] as? Bool, true, "\(mode)-\(name)", file: file, line: line)
            let rows = r["rows"] as! [[String: Any]]
            var steps = 0
            for row in rows where row["steps"] != nil {
                XCTAssertEqual(
                    row["reproduced"] as? Int, row["steps"] as? Int, "\(mode)-\(name) \(row["stage"]!)", file: file,
                    line: line)
                steps += row["steps"] as! Int
            }
            XCTAssertGreaterThan(steps, 0, "\(mode)-\(name): no stream compared", file: file, line: line)
            total += steps
            print("\(mode)-\(name): \(steps) decisions reproduced")
        }
        print("\(name): \(total) greedy decisions (text tokens + audio frames) equal the reference's")
    }

    func testTrainerFinalAndCheckpointConvertWithBaseAndBeside() throws {
        let base = try Self.baseFolder()
        for (folder, name) in [(Self.ft + "/final", "final"), (Self.ft + "/checkpoints/checkpoint_0", "checkpoint_0")] {
            // with --base
            let (b1, s1) = try convert([folder, "--base", base])
            let ties = s1["ties"] as? [[String: Any]] ?? []
            XCTAssertEqual(
                Set(ties.map { $0["name"] as! String }), Set((0..<8).map { "depth_embeddings.\($0).to_logits.weight" }),
                name)
            XCTAssertTrue(ties.allSatisfy { $0["checkpoint_held"] as? String == "stored only" })
            let sources = s1["sources"] as! [[String: String]]
            XCTAssertEqual(sources.first { $0["file"] == "config.json" }?["origin"], "base")
            XCTAssertTrue(sources.filter { $0["file"]!.hasPrefix("model") }.allSatisfy { $0["origin"] == "checkpoint" })
            if name == "checkpoint_0" {
                let ignored = s1["ignored_files"] as! [String]
                XCTAssertTrue(
                    ignored.contains("optimizer.bin") && ignored.contains("random_states_0.pkl"), "\(ignored)")
            } else {
                XCTAssertTrue(
                    sources.contains {
                        $0["file"] == "model.safetensors.index.json" || $0["file"]!.hasPrefix("model-0")
                    }, "final/ is sharded")
            }
            // provenance in the bundle, and inspect shows the ties
            let g = try GGUFFile(path: b1)
            let files = g.metadata[BundleKeys.sourceFiles]!.stringArray!,
                origins = g.metadata[BundleKeys.sourceOrigins]!.stringArray!
            let shas = g.metadata[BundleKeys.sourceSHA256]!.stringArray!
            XCTAssertEqual(files.count, origins.count)
            let ci = try XCTUnwrap(files.firstIndex(of: "config.json"))
            XCTAssertEqual(origins[ci], "base")
            XCTAssertEqual(shas[ci], try Hashing.sha256(file: base + "/config.json"))
            let (irc, table, _) = try runTool("lfm-convert", ["inspect", b1])
            XCTAssertEqual(irc, 0)
            XCTAssertTrue(
                table.contains("depth_embeddings.0.to_logits.weight = depth_embeddings.0.embedding.weight")
                    && table.contains("(from base)"), table)
            try checkStreams(b1, name)
            // verify --against the same pair
            let (vrc, vout, verr) = try runTool(
                "lfm-convert", ["verify", b1, "--against", folder, "--base", base, "--json"])
            XCTAssertEqual(vrc, 0, verr)
            XCTAssertTrue(vout.contains("\"ok\":true"))

            // the base files copied beside the weights: the same tensors
            let m = try Self.merged(folder, base: base)
            let (b2, _) = try convert([m])
            let g2 = try GGUFFile(path: b2)
            XCTAssertEqual(g2.tensors.map(\.name), g.tensors.map(\.name))
            XCTAssertEqual(
                g2.metadata[BundleKeys.tensorCRC32]!.arrayValue!.map(\.intValue),
                g.metadata[BundleKeys.tensorCRC32]!.arrayValue!.map(\.intValue))
            try checkStreams(b2, name)
        }
    }

    /// Free-running greedy generation (not teacher-forced) reproduces the reference's streams, in particular the
    /// chat's interleaved rhythm from config.json (`interleaved_n_text` 3, `interleaved_n_audio` 5, not 6/12).
    func testFreeRunningStreamsAndInterleavedRhythmFromConfig() throws {
        let base = try Self.baseFolder()
        for (folder, name) in [(Self.ft + "/final", "final"), (Self.ft + "/checkpoints/checkpoint_0", "checkpoint_0")] {
            let (b, _) = try convert([folder, "--base", base])
            let model = try LFMModel(path: b, options: ModelOptions(threads: 2, contextLimit: 512))
            XCTAssertEqual(model.bundle.config.interleavedNText, 3)
            XCTAssertEqual(model.bundle.config.interleavedNAudio, 5)
            for mode in ["text", "asr", "tts", "chat"] {
                let m =
                    try JSONSerialization.jsonObject(
                        with: Data(contentsOf: URL(fileURLWithPath: Self.ft + "/goldens/\(mode)-\(name).json")))
                    as! [String: Any]
                let stream = m["stream"] as! [String: Any]
                let wantTokens = stream["text_tokens"] as! [Int], wantFrames = stream["frames"] as! [[Int]],
                    wantSteps = stream["step_modality"] as! [Int]
                let session = Conversation(model: model, system: m["system"] as? String)
                var content: [UserContent] = []
                if mode == "asr" || mode == "chat" {
                    content.append(.audio(try WAVReader.read(fixtures + "/audio/speech.wav")))
                }
                if let p = m["prompt"] as? String, mode != "asr" { content.append(.text(p)) }
                let gm: GenerationMode = mode == "chat" ? .interleaved : mode == "tts" ? .sequential : .text
                var tokens: [Int] = [], frames: [[Int]] = [], steps: [Int] = []
                _ = try session.generate(
                    user: content, mode: gm, maxTokens: m["max_new_tokens"] as! Int, sampling: .greedy
                ) { ev in
                    switch ev {
                    case .text(let id, _): tokens.append(id); steps.append(1)
                    case .audio(let codes): frames.append(codes); steps.append(3)
                    case .done, .samples: break
                    }
                }
                XCTAssertEqual(tokens, wantTokens, "\(mode)-\(name) text tokens")
                XCTAssertEqual(frames, wantFrames, "\(mode)-\(name) frames")
                XCTAssertEqual(steps, wantSteps, "\(mode)-\(name) modality order")
                print(
                    """
                    free-running \(mode)-\(name): \(tokens.count) text tokens, \(frames.count) frames equal the \
                    reference's
                    """
                )
            }
        }
    }

    func testMissingConfigSuggestsBaseAndOptimizerOnlyIsRefused() throws {
        let (rc, _, err) = try runTool("lfm-convert", [Self.ft + "/final", "-o", tmpDir("x") + "/o.gguf"])
        XCTAssertEqual(rc, 1)
        XCTAssertTrue(err.contains("config.json") && err.contains("--base"), err)

        let d = tmpDir("optonly") + "/checkpoint_7"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for n in ["optimizer.bin", "scheduler.bin", "random_states_0.pkl"] {
            try FileManager.default.copyItem(atPath: Self.ft + "/checkpoints/checkpoint_0/" + n, toPath: d + "/" + n)
        }
        let (rc2, _, err2) = try runTool(
            "lfm-convert", [d, "--base", try Self.baseFolder(), "-o", tmpDir("x") + "/o.gguf"])
        XCTAssertEqual(rc2, 1)
        XCTAssertTrue(err2.contains("only training state") && err2.contains("optimizer.bin"), err2)
    }

    /// Rewrites a checkpoint's model.safetensors through `edit` (name → bytes; nil removes the tensor).
    static func rewrite(_ folder: String, _ edit: (String, Data) -> Data?) throws {
        let p = folder + "/model.safetensors"
        let f = try SafetensorsFile(path: p)
        var entries: [SafetensorsWriter.Entry] = []
        for n in f.names {
            let t = f.tensors[n]!
            if let d = edit(n, Data(t.bytes)) {
                entries.append(.init(name: n, dtype: t.dtype, shape: t.shape, data: d))
            }
        }
        try SafetensorsWriter.write(entries, metadata: f.metadata, to: p + ".new")
        try FileManager.default.removeItem(atPath: p)
        try FileManager.default.moveItem(atPath: p + ".new", toPath: p)
    }

    func testTieWhoseMembersDifferIsAnErrorNamingThePair() throws {
        let d = tmpDir("tie-differ") + "/m"
        try FileManager.default.copyItem(atPath: fixtures + "/tiny-a/model", toPath: d)
        try Self.rewrite(d) { n, data in
            guard n == "depth_embeddings.3.to_logits.weight" else { return data }
            var x = data; x[100] ^= 0x40; return x
        }
        let ckpt = try Checkpoint(folder: d)
        XCTAssertThrowsError(try Planner.plan(ckpt, recipe: Recipe(preset: .f32))) { e in
            let s = "\(e)"
            XCTAssertTrue(
                s.contains("depth_embeddings.3.embedding.weight") && s.contains("depth_embeddings.3.to_logits.weight")
                    && s.contains("depthformer.tie"), s)
        }
    }

    /// The same model saved with both tie members and with the tied ones removed gives bundles of the same size and
    /// tensors; the derived member is read through the tie table; only-derived works too.
    func testTiedCheckpointBundleSizeEqualsBothMembers() throws {
        let both = tmpDir("tie-both") + "/m"
        try FileManager.default.copyItem(atPath: try materializedFixture("tiny-a"), toPath: both)
        let stored = tmpDir("tie-stored") + "/m", derived = tmpDir("tie-derived") + "/m"
        try FileManager.default.copyItem(atPath: both, toPath: stored)
        try FileManager.default.copyItem(atPath: both, toPath: derived)
        try Self.rewrite(stored) { n, d in n.hasSuffix("to_logits.weight") && n.hasPrefix("depth_embeddings.") ? nil : d
        }
        try Self.rewrite(derived) { n, d in
            n.hasSuffix("embedding.weight") && n.hasPrefix("depth_embeddings.") && !n.contains("to_logits") ? nil : d
        }
        var sizes: [Int] = []
        var crcs: [[Int?]] = []
        for (i, m) in [both, stored, derived].enumerated() {
            for preset in [Preset.f32, .q8_0] {
                let ckpt = try Checkpoint(folder: m)
                let plan = try Planner.plan(ckpt, recipe: Recipe(preset: preset))
                XCTAssertEqual(plan.ties.count, 8)
                XCTAssertFalse(plan.tensors.contains { $0.name.hasSuffix("to_logits.weight") })
                let out = tmpDir("tie-out") + "/b.gguf"
                let r = try Converter.convert(ckpt, plan: plan, to: out, options: ConvertOptions(threads: 2))
                if preset == .f32 {
                    sizes.append(r.bytes)
                    crcs.append(r.crc32.map { Int($0) })
                    let b = try ModelBundle(path: out)
                    XCTAssertEqual(b.ties["depth_embeddings.5.to_logits.weight"], "depth_embeddings.5.embedding.weight")
                    let a = try XCTUnwrap(b.tensor("depth_embeddings.5.to_logits.weight")),
                        e = try XCTUnwrap(b.tensor("depth_embeddings.5.embedding.weight"))
                    XCTAssertEqual(a.bytes.baseAddress, e.bytes.baseAddress)
                    _ = try LFMModel(path: out, options: ModelOptions(threads: 1, contextLimit: 64))
                    if i == 0 { print("tied bundle size: both members \(r.bytes) bytes") }
                }
            }
        }
        XCTAssertEqual(sizes[0], sizes[1], "both members vs accelerate-style (derived removed)")
        XCTAssertEqual(sizes[0], sizes[2], "both members vs only the derived member")
        XCTAssertEqual(crcs[0], crcs[1]); XCTAssertEqual(crcs[0], crcs[2])
        print("tied bundle sizes (both / stored only / derived only): \(sizes)")
    }
}

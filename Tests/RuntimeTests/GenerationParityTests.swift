import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// Text chat against the reference (goldens from scripts/reference/make_text_goldens.py, f32 bundles): prompt
/// ids, per-layer prefill hidden states, the logits of every greedy step and the greedy token stream of two
/// turns — the second continuing from the session's cache while the reference re-prefills the whole history.
final class GenerationParityTests: XCTestCase {
    func check(_ fixture: String) throws {
        let g = try Goldens(fixtures + "/text/\(fixture).safetensors")
        let m = try JSONValue.parse(
            data: try Data(contentsOf: URL(fileURLWithPath: fixtures + "/text/manifest.json")), file: "manifest")
        let prompts = m["fixtures"]![fixture]!["prompts"]!
        let system = prompts["system"]!.stringValue!, user = prompts["user"]!.stringValue!,
            user2 = prompts["user2"]!.stringValue!
        let model = try LFMModel(
            path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: 2, contextLimit: 512))
        let session = Conversation(model: model, system: system)
        let rec = TraceRecorder()
        session.setTrace(rec.trace)

        // turn 1
        let want1 = g.ints("t.tokens")
        var got1: [Int] = []
        let stats1 = try session.generate(user: user, maxTokens: 24, sampling: .greedy) {
            if case .text(let id, _) = $0 { got1.append(id) }
        }
        XCTAssertEqual(
            session.history.prefix(g.ints("t.text_ids").count).map { $0.textId ?? -1 }, g.ints("t.text_ids"),
            "\(fixture) prompt ids")
        XCTAssertEqual(got1, want1, "\(fixture) turn-1 greedy stream")
        XCTAssertEqual(stats1.stopReason, want1.last == 7 ? .imEnd : .maxTokens)
        var logits = rec.values("text.logits")
        let stepLogits = g.floats("t.step_logits")
        let V = model.backbone.vocab
        var worst: Float = 0
        for (i, l) in logits.prefix(want1.count).enumerated() {
            worst = max(worst, relErr(l, Array(stepLogits[(i * V)..<((i + 1) * V)])))
        }
        XCTAssertLessThan(worst, 1e-4, "\(fixture) turn-1 logits")

        // turn 2 from the cache
        rec.clear()
        let want2 = g.ints("t2.tokens")
        var got2: [Int] = []
        _ = try session.generate(user: user2, maxTokens: want2.count, sampling: .greedy) {
            if case .text(let id, _) = $0 { got2.append(id) }
        }
        let hist2 = g.ints("t2.text_ids")
        XCTAssertEqual(
            session.history.prefix(hist2.count).map { $0.textId ?? -1 }, hist2,
            "\(fixture) turn-2 history = what the reference re-prefills")
        XCTAssertEqual(got2, want2, "\(fixture) turn-2 greedy stream")
        logits = rec.values("text.logits")
        let step2 = g.floats("t2.step_logits")
        var worst2: Float = 0
        for (i, l) in logits.prefix(want2.count).enumerated() {
            worst2 = max(worst2, relErr(l, Array(step2[(i * V)..<((i + 1) * V)])))
        }
        XCTAssertLessThan(worst2, 1e-4, "\(fixture) turn-2 logits")
        print(
            """
            \(fixture): turn 1 \(got1.count) tokens (logit rel err \(worst)), turn 2 \(got2.count) tokens from the \
            cache (\(worst2))
            """
        )
    }

    func testTinyA() throws { try check("tiny-a") }
    func testTinyB() throws { try check("tiny-b") }

    func testPrefillHiddenStatesOfTextPrompt() throws {
        let g = try Goldens(fixtures + "/text/tiny-b.safetensors")
        let model = try LFMModel(
            path: try Bundles.path("tiny-b", .f32), options: ModelOptions(threads: 1, contextLimit: 256))
        let ids = g.ints("t.text_ids")
        let bb = model.backbone, h = bb.hidden
        var emb = [Float](repeating: 0, count: ids.count * h)
        emb.withUnsafeMutableBufferPointer { e in
            for (i, id) in ids.enumerated() { bb.embedding(id, into: e.baseAddress! + i * h) }
        }
        XCTAssertLessThan(relErr(emb, g.floats("t.in_emb")), 1e-6)
        var layers = [[Float]](repeating: [], count: bb.config.numHiddenLayers + 1)
        let state = bb.makeState(), rec = TraceRecorder()
        state.trace = rec.trace
        _ = try emb.withUnsafeBufferPointer {
            try bb.step(.init(embeddings: $0.baseAddress!, count: ids.count), state: state)
        }
        for e in rec.all() where e.name == "lfm.hidden" { layers[e.layer!] += e.values }
        let hs = g.floats("t.hidden_states")
        for i in layers.indices {
            XCTAssertLessThan(
                relErr(layers[i], Array(hs[(i * ids.count * h)..<((i + 1) * ids.count * h)])), 1e-4, "layer \(i)")
        }
    }

    /// Cancel, context overflow, the AsyncSequence API.
    func testSessionAPI() async throws {
        let model = try LFMModel(
            path: try Bundles.path("tiny-a", .q8_0), options: ModelOptions(threads: 2, contextLimit: 64))
        let s = Conversation(model: model, system: nil)
        var ids: [Int] = []
        var done: GenerationStats?
        for try await ev in s.reply(to: "Hello", maxTokens: 8) {
            switch ev {
            case .text(let id, _): ids.append(id);
            case .done(let st): done = st;
            case .audio, .samples: XCTFail("no audio in text mode")
            }
        }
        XCTAssertEqual(ids.count, done?.generatedTokens)
        XCTAssertFalse(ids.isEmpty)
        // the context limit is a clear error
        let long = String(repeating: "word ", count: 200)
        do {
            _ = try s.generate(user: long, maxTokens: 4, sampling: .greedy) { _ in }; XCTFail("expected overflow")
        } catch let e as RuntimeError { XCTAssertTrue("\(e)".contains("context limit")) }
        // cancel stops at the next token
        let s2 = Conversation(model: model, system: nil)
        let st = try s2.generate(user: "Hi", maxTokens: 50, sampling: SamplingParams(temperature: 1, seed: 1)) { ev in
            if case .text = ev { s2.cancel() }
        }
        XCTAssertEqual(st.stopReason, .cancelled)
        XCTAssertEqual(st.generatedTokens, 1)
    }

    /// q8_0 / q4_0 next-token agreement with f32 on the fixtures (the README table comes from `lfm-run compare`).
    func testQuantizedBundlesAgreeWithF32() throws {
        let f32 = try LFMModel(path: try Bundles.path("tiny-a", .f32), options: ModelOptions(threads: 2))
        // tiny random models have small top-2 margins, so these are loose sanity bounds
        for (preset, minTop1) in [
            (Preset.q8_0, 0.8), (.q4_0, 0.3), (.q3_k_m, 0.3), (.q4_k_m, 0.3), (.q5_k_m, 0.5), (.q6_k, 0.7),
        ] {
            let q = try LFMModel(path: try Bundles.path("tiny-a", preset), options: ModelOptions(threads: 2))
            let r = try NextTokenComparison.run(
                baseline: f32, candidate: q, system: nil, prompts: ["Hello there", "2+2=?"], steps: 16)
            XCTAssertGreaterThan(r.steps, 2)
            XCTAssertLessThanOrEqual(r.steps, 32)
            XCTAssertGreaterThan(r.top1Rate, minTop1, "\(preset)")
            XCTAssertEqual(NextTokenComparison.kl([1, 2, 3], [1, 2, 3]), 0, accuracy: 1e-12)
        }
    }

    /// The audio head's per-codebook agreement (`lfm-run compare`): a bundle against itself agrees everywhere,
    /// q4_0 less than q8_0 in KL.
    func testAudioHeadComparisonPerCodebook() throws {
        let f32 = try LFMModel(path: try Bundles.path("tiny-a", .f32), options: ModelOptions(threads: 2))
        let same = try AudioHeadComparison.run(baseline: f32, candidate: f32, sentences: ["Hello there"], steps: 24)
        XCTAssertGreaterThan(same.frames, 3)
        XCTAssertEqual(same.steps.count, 8)
        for k in 0..<8 {
            XCTAssertGreaterThan(same.steps[k], 0)
            XCTAssertGreaterThanOrEqual(same.top1Rate[k], 0.9, "codebook \(k)")
            XCTAssertLessThan(same.meanKL[k], 1e-6, "codebook \(k)")
        }
        var kl: [Double] = []
        for preset in [Preset.q8_0, .q4_0] {
            let q = try LFMModel(path: try Bundles.path("tiny-a", preset), options: ModelOptions(threads: 2))
            let r = try AudioHeadComparison.run(baseline: f32, candidate: q, sentences: ["Hello there"], steps: 24)
            XCTAssertEqual(r.frames, same.frames)
            XCTAssertGreaterThan(r.meanKL.reduce(0, +), 0, "\(preset)")
            kl.append(r.meanKL.reduce(0, +))
        }
        XCTAssertLessThan(kl[0], kl[1], "q8_0 should be closer to f32 than q4_0")
    }
}

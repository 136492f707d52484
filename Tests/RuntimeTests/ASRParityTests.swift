import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// ASR against the reference (f32 bundles): the bundled 22.05 kHz WAV read by the runtime, resampled, encoded and
/// placed in the "Perform ASR." prompt; the prompt layout, the audio embeddings, every step's logits and the greedy
/// stream must match generate_sequential.
final class ASRParityTests: XCTestCase {
    func check(_ fixture: String) throws {
        let g = try Goldens(fixtures + "/audio/asr-\(fixture).safetensors")
        let model = try LFMModel(
            path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: 2, contextLimit: 256))
        let clip = try WAVReader.read(fixtures + "/audio/speech.wav")
        XCTAssertEqual(clip.sampleRate, 22050)
        let emb = try XCTUnwrap(model.audioEncoder).embed(clip)
        let eEmb = relErr(emb.values, g.floats("asr.audio_in_emb"))
        XCTAssertLessThan(eEmb, 1e-4, "\(fixture) audio embeddings")

        let session = Conversation(model: model, system: ChatFormat.System.asr)
        let rec = TraceRecorder()
        session.setTrace(rec.trace)
        var tokens: [Int] = []
        let want = g.ints("asr.tokens")
        let stats = try session.generate(user: [.audio(clip)], maxTokens: want.count, sampling: .greedy) { ev in
            if case .text(let id, _) = ev { tokens.append(id) }
        }
        // prompt: text ids at text positions, audio positions where the reference puts them
        let flags = g.ints("asr.modality_flag"), ids = g.ints("asr.text_ids")
        let prompt = Array(session.history.prefix(flags.count))
        XCTAssertEqual(prompt.map(\.modality.rawValue), flags, "\(fixture) modality layout")
        XCTAssertEqual(prompt.compactMap(\.textId), ids, "\(fixture) prompt ids")
        let steps = rec.values("text.logits")
        XCTAssertEqual(stats.audioPositions, emb.count)
        XCTAssertEqual(tokens, want, "\(fixture) greedy ASR stream")
        let wantLogits = g.floats("asr.step_logits"), V = model.backbone.vocab
        var worst: Float = 0
        for (i, s) in steps.enumerated() where i < want.count {
            worst = max(worst, relErr(s, Array(wantLogits[(i * V)..<((i + 1) * V)])))
        }
        XCTAssertLessThan(worst, 1e-4, "\(fixture) step logits")
        print(
            """
            \(fixture): ASR \(tokens.count) tokens identical (\(stats.stopReason)); audio emb rel err \(eEmb); \
            logits worst \(worst)
            """
        )
    }

    func testASRMatchesReference() throws { try check("tiny-a"); try check("tiny-b") }
}

final class WindowTests: XCTestCase {
    /// Long recordings are cut at the quietest point of the last half of each window.
    func testCutsAtQuietPoints() {
        let rate = 1000
        // 25 s of tone with silences at 7.3 s and 16.1 s
        var x = (0..<(25 * rate)).map { i in Float(sin(Double(i) * 0.3)) * 0.5 }
        for c in [7300, 16100] { for i in (c - 100)..<(c + 100) { x[i] = 0 } }
        let w = Transcriber.windows(x, rate: rate, maxSeconds: 10)
        XCTAssertEqual(w.count, 3)
        XCTAssertEqual(w.first?.lowerBound, 0); XCTAssertEqual(w.last?.upperBound, x.count)
        for (a, b) in zip(w, w.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
        XCTAssertTrue(w.allSatisfy { $0.count <= 10 * rate })
        XCTAssertEqual(Double(w[0].upperBound), 7300, accuracy: 60)
        XCTAssertEqual(Double(w[1].upperBound), 16100, accuracy: 60)
        XCTAssertEqual(Transcriber.windows(Array(x.prefix(5000)), rate: rate, maxSeconds: 10), [0..<5000])
        XCTAssertEqual(Transcriber.windows([], rate: rate, maxSeconds: 10), [0..<0])
    }
}

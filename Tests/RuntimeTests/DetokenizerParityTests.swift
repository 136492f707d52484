import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// The LFM2 detokenizer streamed frame by frame against the reference's batch `LFM2AudioDetokenizer(e.codes)`:
/// embeddings, hidden states, spectra and the waveform (1440 samples for frame 0, 1920 after, 480 at the flush).
final class DetokenizerParityTests: XCTestCase {
    func testStreamingDetokenizerMatchesReference() throws {
        for fixture in ["tiny-a", "tiny-b"] {
            let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
            let model = try LFMModel(
                path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: 2, contextLimit: 64))
            let det = try XCTUnwrap(model.detokenizer)
            let codes = g.ints("e.codes"), T = codes.count / 8
            let st = det.makeState(), rec = TraceRecorder()
            st.trace = rec.trace
            var wave: [Float] = []
            for t in 0..<T {
                let y = try det.step((0..<8).map { codes[$0 * T + t] }, state: st)
                XCTAssertEqual(y.count, t == 0 ? 1440 : 1920)
                wave += y
            }
            let tail = det.flush(state: st)
            var stages: [String: [Float]] = [:]
            for e in rec.all() { stages[String(e.name.dropFirst("detok.".count)), default: []] += e.values }
            XCTAssertEqual(tail.count, 480)
            wave += tail
            var worst: Float = 0
            for name in ["emb", "hidden", "spectra"] {
                let e = relErr(try XCTUnwrap(stages[name]), g.floats("e.detok.\(name)"))
                XCTAssertLessThan(e, 1e-4, "\(fixture) \(name)")
                worst = max(worst, e)
            }
            let e = relErr(wave, g.floats("e.detok_wave"))
            XCTAssertLessThan(e, 1e-4, "\(fixture) waveform")
            print(
                """
                \(fixture): detokenizer streaming of \(T) frames (window \(det.window)), waveform rel err \(e), \
                stages worst \(worst)
                """
            )
            // a new utterance after reset gives the same samples
            st.trace = nil
            st.reset()
            XCTAssertEqual(try det.step((0..<8).map { codes[$0 * T] }, state: st), Array(wave.prefix(1440)))
        }
    }
}

final class DetokenizerWindowTests: XCTestCase {
    /// A long utterance (the KV cache is compacted many times) gives the same samples as a cache that never is.
    func testCompactedCacheEqualsUncompacted() throws {
        let path = try Bundles.path("tiny-b", .f32)
        let bundle = try ModelBundle(path: path)
        let pool = WorkerPool.shared(threads: 2)
        let cfg = try decodeConfig(
            LFM2Config.self, from: Data(bundle.gguf.metadata[BundleKeys.detokenizerConfig]!.stringValue!.utf8),
            file: path)
        let det = try Detokenizer(TensorLoader(bundle), config: cfg, pool: pool)
        let small = det.makeState(capacity: det.window + 6), big = det.makeState(capacity: det.window + 4000)
        var rng = SeededRandom(seed: 7)
        var a: [Float] = [], b: [Float] = []
        for _ in 0..<60 {
            let f = (0..<8).map { _ in Int(rng.next() % 2048) }
            a += try det.step(f, state: small); b += try det.step(f, state: big)
        }
        a += det.flush(state: small); b += det.flush(state: big)
        XCTAssertEqual(a.count, 60 * 1920)
        XCTAssertLessThan(relErr(a, b), 1e-6)
    }
}

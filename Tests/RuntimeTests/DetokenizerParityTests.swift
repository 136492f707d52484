import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@testable import MiniRuntime

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
            var stages: [String: [Float]] = [:]
            det.stageObserver = { name, x, _ in stages[name, default: []] += x }
            var wave: [Float] = []
            for t in 0..<T {
                let y = try det.decode(frame: (0..<8).map { codes[$0 * T + t] })
                XCTAssertEqual(y.count, t == 0 ? 1440 : 1920)
                wave += y
            }
            let tail = det.flush()
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
                "\(fixture): detokenizer streaming of \(T) frames (window \(det.window)), waveform rel err \(e), stages worst \(worst)"
            )
            // a new utterance after reset gives the same samples
            det.stageObserver = nil
            det.reset()
            XCTAssertEqual(try det.decode(frame: (0..<8).map { codes[$0 * T] }), Array(wave.prefix(1440)))
        }
    }
}

final class DetokenizerWindowTests: XCTestCase {
    /// A long utterance (the KV cache is compacted many times) gives the same samples as a cache that never is.
    func testCompactedCacheEqualsUncompacted() throws {
        let path = try Bundles.path("tiny-b", .f32)
        let bundle = try ModelBundle(path: path)
        let pool = WorkerPool(threads: 2)
        let cfg = try decodeConfig(
            LFM2Config.self, from: Data(bundle.gguf.metadata[BundleKeys.detokenizerConfig]!.stringValue!.utf8),
            file: path)
        let small = try Detokenizer(TensorLoader(bundle), config: cfg, pool: pool, extraCapacity: 6)
        let big = try Detokenizer(TensorLoader(bundle), config: cfg, pool: pool, extraCapacity: 4000)
        var rng = SeededRandom(seed: 7)
        var a: [Float] = [], b: [Float] = []
        for _ in 0..<60 {
            let f = (0..<8).map { _ in Int(rng.next() % 2048) }
            a += try small.decode(frame: f); b += try big.decode(frame: f)
        }
        a += small.flush(); b += big.flush()
        XCTAssertEqual(a.count, 60 * 1920)
        XCTAssertLessThan(relErr(a, b), 1e-6)
    }
}

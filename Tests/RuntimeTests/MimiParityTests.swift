import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// Mimi's streaming decoder (frame by frame, zero lookahead) against the reference's batch `MimiModel.decode` of
/// the fixtures' 12 frames: every stage and the waveform.
final class MimiParityTests: XCTestCase {
    /// [1, C, L] channel-first golden → time-major prefix of `frames` rows... as [L][C].
    func timeMajor(_ g: [Float], channels C: Int) -> [Float] {
        let L = g.count / C
        var out = [Float](repeating: 0, count: g.count)
        for c in 0..<C { for t in 0..<L { out[t * C + c] = g[c * L + t] } }
        return out
    }

    func testStreamingDecodeMatchesReference() throws {
        for fixture in ["tiny-a", "tiny-b"] {
            let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
            let model = try LFMModel(
                path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: 2, contextLimit: 64))
            let mimi = try XCTUnwrap(model.mimi)
            let codes = g.ints("e.codes"), T = codes.count / 8
            let st = mimi.makeState(), rec = TraceRecorder()
            st.trace = rec.trace
            var wave: [Float] = []
            for t in 0..<T {
                let frame = (0..<8).map { codes[$0 * T + t] }
                let y = try mimi.step(frame, state: st)
                XCTAssertEqual(y.count, mimi.samplesPerFrame)
                wave += y
            }
            var stages: [String: [Float]] = [:], channels: [String: Int] = [:]
            for e in rec.all() {
                let name = String(e.name.dropFirst("mimi.".count))
                stages[name, default: []] += e.values; channels[name] = e.width
            }
            var worst: (String, Float) = ("", 0)
            for name in ["latent", "upsampled", "transformer_out"]
                + [0, 2, 3, 5, 6, 8, 9, 11, 12].map({ "seanet.\($0)" })
            {
                let want = g.floats("e.mimi.\(name)"), c = try XCTUnwrap(channels[name])
                let tm = timeMajor(want, channels: c)
                let got = Array(try XCTUnwrap(stages[name]).prefix(tm.count))
                let e = relErr(got, tm)
                XCTAssertLessThan(e, 1e-4, "\(fixture) \(name)")
                if e > worst.1 { worst = (name, e) }
            }
            let e = relErr(wave, g.floats("e.mimi_decode_wave"))
            XCTAssertLessThan(e, 1e-4, "\(fixture) waveform")
            print(
                """
                \(fixture): Mimi streaming decode of \(T) frames, waveform rel err \(e) (worst stage \(worst.0) \
                \(worst.1))
                """
            )
            // reset starts a new stream: decoding again gives the same samples
            st.trace = nil
            st.reset()
            let again = try mimi.step((0..<8).map { codes[$0 * T] }, state: st)
            XCTAssertEqual(again, Array(wave.prefix(mimi.samplesPerFrame)))
            XCTAssertThrowsError(try mimi.step([2048, 0, 0, 0, 0, 0, 0, 0], state: st))
        }
    }
}

/// Mimi's transformer keeps a 250-slot ring and writes both keys of a frame before attending (as the reference's
/// RingKVCache): up to 250 steps (10 s) a frame-by-frame decode equals the batch decode (each query sees the 250
/// most recent keys including itself); from step 250 on, the first query of each frame sees 249.
final class MimiRingTests: XCTestCase {
    func testRingMatchesBatchUpTo250StepsThenDropsOneKey() throws {
        let bundle = try ModelBundle(path: try Bundles.path("tiny-a", .f32))
        let L = TensorLoader(bundle)
        let cfg = try decodeConfig(
            MimiConfig.self, from: Data(bundle.gguf.metadata[BundleKeys.mimiConfig]!.stringValue!.utf8), file: "mimi")
        XCTAssertEqual(cfg.transformer.context, 250)
        let pool = WorkerPool.shared(threads: 1)
        let paired = try MimiTransformerLayer(
            L, "mimi.decoder_transformer.transformer.layers.0.", config: cfg.transformer)
        let single = try MimiTransformerLayer(
            L, "mimi.decoder_transformer.transformer.layers.0.", config: cfg.transformer)
        let d = cfg.transformer.dModel
        let pairedRing = paired.makeState(), singleRing = single.makeState()
        var rng = SeededRandom(seed: 3)
        var firstDiff: Int? = nil
        var maxBefore: Float = 0
        for f in 0..<140 {
            let x = (0..<(2 * d)).map { _ in Float(rng.unit() * 2 - 1) }
            var a = x
            paired.step(&a, T: 2, ring: pairedRing, pool: pool)
            var b0 = Array(x[0..<d]), b1 = Array(x[d...])
            single.step(&b0, T: 1, ring: singleRing, pool: pool); single.step(&b1, T: 1, ring: singleRing, pool: pool)
            let e = relErr(a, b0 + b1)
            if 2 * f + 1 < 250 {
                maxBefore = max(maxBefore, e)
            } else if e > 1e-6 && firstDiff == nil {
                firstDiff = 2 * f
            }
            // the second query of every frame always sees the same 250 keys
            XCTAssertLessThan(relErr(Array(a[d...]), b1), 1e-6, "frame \(f) second step")
        }
        XCTAssertLessThan(maxBefore, 1e-6, "streaming ≡ batch under 250 steps")
        XCTAssertEqual(firstDiff, 250, "the first query of frame 125 (step 250) is the first to miss the oldest key")
    }
}

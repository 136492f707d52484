import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// The audio input path against the reference's goldens (f32 bundles): subsampling output, every Conformer
/// layer, the encoder output and the adapter output, from the golden mel and end to end from the waveform.
final class EncoderParityTests: XCTestCase {
    func check(_ fixture: String, threads: Int) throws {
        let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
        let model = try LFMModel(
            path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: threads, contextLimit: 256))
        let enc = try XCTUnwrap(model.audioEncoder)
        let d = enc.config.dModel
        let melShape = g.shape("a.mel")
        let T = melShape.last!, F = melShape[melShape.count - 2]
        let flat = g.floats("a.mel")
        let mel = (0..<F).map { f in Array(flat[(f * T)..<((f + 1) * T)]) }
        var worst: Float = 0
        var seen = 0
        let rec = TraceRecorder()
        let out = enc.conformer(mel: mel, trace: rec.trace)
        for ev in rec.all() {
            let i = ev.layer!, x = ev.values
            let name = i == 0 ? "b.conformer_pre_encode" : "b.conformer_layer\(i - 1)"
            let want = g.floats(name)
            let e = relErr(x, want)
            XCTAssertLessThan(e, 1e-4, "\(fixture) \(name)")
            worst = max(worst, e); seen += 1
        }
        XCTAssertEqual(seen, enc.config.nLayers + 1)
        let Tenc = out.count / d
        XCTAssertEqual(Tenc, g.ints("b.conformer_len").first)
        XCTAssertEqual(Tenc, enc.positions(samples: g.floats("input.wave_16k").count))
        // b.conformer_out is [1, d, T]
        let wantOut = g.floats("b.conformer_out")
        var outT = [Float](repeating: 0, count: d * Tenc)
        for t in 0..<Tenc { for c in 0..<d { outT[c * Tenc + t] = out[t * d + c] } }
        let eOut = relErr(outT, wantOut)
        XCTAssertLessThan(eOut, 1e-4, "\(fixture) conformer out")
        let ad = enc.adapt(out)
        let eAd = relErr(ad, g.floats("b.adapter_out"))
        XCTAssertLessThan(eAd, 1e-4, "\(fixture) adapter")
        // end to end from the waveform (resampler identity at 16 kHz, mel front end, conformer, adapter)
        let clip = AudioClip(samples: g.floats("input.wave_16k"), sampleRate: 16000, channels: 1)
        let emb = try enc.embed(clip)
        XCTAssertEqual(emb.count, Tenc)
        let eE2E = relErr(emb.values, g.floats("b.adapter_out"))
        XCTAssertLessThan(eE2E, 1e-4, "\(fixture) waveform → adapter")
        print(
            """
            \(fixture) threads \(threads): layers worst \(worst), encoder out \(eOut), adapter \(eAd), \
            waveform→adapter \(eE2E)
            """
        )
    }

    func testEncoderMatchesReference() throws {
        for f in ["tiny-a", "tiny-b"] { try check(f, threads: 1); try check(f, threads: 2) }
    }

    /// Quantized presets load the encoder and stay close (not a parity claim: a smoke check of the types).
    func testQuantizedEncoderRuns() throws {
        let g = try Goldens(fixtures + "/tiny-a/golden.safetensors")
        let clip = AudioClip(samples: g.floats("input.wave_16k"), sampleRate: 16000, channels: 1)
        for p in [Preset.q8_0, .q4_0, .f16] {
            let model = try LFMModel(
                path: try Bundles.path("tiny-a", p), options: ModelOptions(threads: 2, contextLimit: 256))
            let emb = try XCTUnwrap(model.audioEncoder).embed(clip)
            let e = relErr(emb.values, g.floats("b.adapter_out"))
            XCTAssertLessThan(e, 0.1, "\(p)")
            print("tiny-a \(p): waveform → adapter rel err \(e)")
        }
    }
}

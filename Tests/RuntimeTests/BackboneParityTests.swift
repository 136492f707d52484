import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// The backbone against the reference's per-stage goldens (f32 bundles): feed the golden prefill embeddings
/// (`c.in_emb`), compare every layer's hidden states, the final hidden state and the text logits.
final class BackboneParityTests: XCTestCase {
    func check(_ fixture: String, threads: Int) throws {
        let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
        let model = try LFMModel(
            path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: threads, contextLimit: 256))
        let bb = model.backbone
        let h = bb.hidden
        let inEmb = g.floats("c.in_emb")
        let L = inEmb.count / h
        let hs = g.floats("c.hidden_states")
        let nLayers = bb.config.numHiddenLayers
        XCTAssertEqual(hs.count, (nLayers + 1) * L * h)
        var got = [[Float]](repeating: [], count: nLayers + 1)
        let state = bb.makeState(), rec = TraceRecorder()
        state.trace = rec.trace
        let last = try inEmb.withUnsafeBufferPointer {
            try bb.step(.init(embeddings: $0.baseAddress!, count: L), state: state)
        }
        for e in rec.all() where e.name == "lfm.hidden" { got[e.layer!] += e.values }
        var worst: Float = 0
        for layer in 0...nLayers {
            let want = Array(hs[(layer * L * h)..<((layer + 1) * L * h)])
            let e = relErr(got[layer], want)
            worst = max(worst, e)
            XCTAssertLessThan(e, 1e-4, "\(fixture) layer \(layer)")
        }
        let wantLast = g.floats("c.last_hidden")
        XCTAssertLessThan(relErr(last, Array(wantLast.suffix(h))), 1e-4)
        let logits = bb.logits(last)
        let wantLogits = g.floats("c.text_logits_last")
        let le = relErr(logits, wantLogits)
        XCTAssertLessThan(le, 1e-4)
        XCTAssertEqual(
            logits.indices.max { logits[$0] < logits[$1] }, wantLogits.indices.max { wantLogits[$0] < wantLogits[$1] })
        print("\(fixture) threads \(threads): worst layer rel err \(worst), logits rel err \(le)")
    }

    func testTinyA() throws { try check("tiny-a", threads: 2) }
    func testTinyB() throws { try check("tiny-b", threads: 1) }
}

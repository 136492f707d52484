import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@testable import MiniRuntime

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
        var last = [Float](repeating: 0, count: h)
        try inEmb.withUnsafeBufferPointer { x in
            try last.withUnsafeMutableBufferPointer { l in
                try bb.forward(x.baseAddress!, count: L, last: l.baseAddress!) { layer, ptr, n in
                    got[layer] += Array(UnsafeBufferPointer(start: ptr, count: n * h))
                }
            }
        }
        var worst: Float = 0
        for layer in 0...nLayers {
            let want = Array(hs[(layer * L * h)..<((layer + 1) * L * h)])
            let e = relErr(got[layer], want)
            worst = max(worst, e)
            XCTAssertLessThan(e, 1e-4, "\(fixture) layer \(layer)")
        }
        let wantLast = g.floats("c.last_hidden")
        XCTAssertLessThan(relErr(last, Array(wantLast.suffix(h))), 1e-4)
        var logits = [Float](repeating: 0, count: bb.vocab)
        last.withUnsafeBufferPointer { l in
            logits.withUnsafeMutableBufferPointer { bb.logits(l.baseAddress!, into: $0.baseAddress!) }
        }
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

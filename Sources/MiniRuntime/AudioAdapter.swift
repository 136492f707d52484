import Foundation
import Formats
import CKernels

/// `audio_adapter` MLP (liquid_audio/model/lfm2_audio.py, `LFM2AudioModel.__init__`; liquid_audio/model/mlp.py):
/// LayerNorm(d) → Linear d→H → GELU (exact erf) → Linear H→H.
/// Its rows go straight into the LFM2 input sequence at the audio positions.
final class AudioAdapter: Sendable {
    let norm: LayerNorm, l1: Linear, l2: Linear
    init(_ L: TensorLoader, inDim d: Int, hidden h: Int) throws {
        let p = "audio_adapter.model."
        norm = try LayerNorm(L, p + "0", dim: d)
        l1 = try Linear(L, p + "1", out: h, in: d)
        l2 = try Linear(L, p + "3", out: h, in: h)
    }
    var outFeatures: Int { l2.outFeatures }
    /// x: T × d → T × H.
    func forward(_ x: UnsafePointer<Float>, T: Int, act: Activations, pool: WorkerPool) -> [Float] {
        let d = norm.weight.count, h = l1.outFeatures
        let n = UnsafeMutablePointer<Float>.allocate(capacity: T * d),
            m = UnsafeMutablePointer<Float>.allocate(capacity: T * h)
        defer { n.deallocate(); m.deallocate() }
        norm(x, rows: T, into: n)
        l1(n, rows: T, into: m, act: act, pool: pool)
        lfm_gelu_erf(m, T * h)
        var y = [Float](repeating: 0, count: T * l2.outFeatures)
        y.withUnsafeMutableBufferPointer { l2(m, rows: T, into: $0.baseAddress!, act: act, pool: pool) }
        return y
    }
}

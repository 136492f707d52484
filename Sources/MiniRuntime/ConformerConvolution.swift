import Foundation
import Formats
import CKernels

/// Conformer convolution module (liquid_audio/model/conformer/modules.py, `ConformerConvolution`): pointwise
/// 512→1024, GLU (value ⊙ σ(gate)), depthwise conv k=9 with 4+4 zero padding over time whose weights already carry
/// the eval-mode batch norm (folded by the converter: `conv.depthwise_conv_bn_folded.*`), SiLU, pointwise 512→512.
/// Whole segment at once (offline).
final class ConformerConvolution: Sendable {
    let pw1: Linear, pw2: Linear
    /// Depthwise kernel as [K][d] (tap-major) and the folded bias.
    let dw: [Float], dwBias: [Float]
    let d: Int, kernel: Int

    init(_ L: TensorLoader, prefix p: String, layer: Int, dModel: Int, kernel k: Int) throws {
        d = dModel; kernel = k
        pw1 = try Linear(L, p + "pointwise_conv1", out: 2 * d, in: d)
        pw2 = try Linear(L, p + "pointwise_conv2", out: d, in: d)
        let folded = BundleNames.foldedDepthwise(layer)
        let w = try L.floats(folded + ".weight", shape: [d, 1, k])
        var t = [Float](repeating: 0, count: k * d)
        for c in 0..<d { for i in 0..<k { t[i * d + c] = w[c * k + i] } }
        dw = t
        dwBias = try L.floats(folded + ".bias", shape: [d])
    }

    /// x: T × d (normed); out: T × d.
    func forward(
        _ x: UnsafePointer<Float>, T: Int, out y: UnsafeMutablePointer<Float>, act: Activations, pool: WorkerPool
    ) {
        let d = d, K = kernel, pad = (kernel - 1) / 2
        let h = UnsafeMutablePointer<Float>.allocate(capacity: T * 2 * d),
            z = UnsafeMutablePointer<Float>.allocate(capacity: T * d)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: T * d)
        defer { h.deallocate(); z.deallocate(); c.deallocate() }
        pw1(x, rows: T, into: h, act: act, pool: pool)
        for t in 0..<T { lfm_glu(h + t * 2 * d, h + t * 2 * d + d, d, z + t * d) }
        dw.withUnsafeBufferPointer { w in
            dwBias.withUnsafeBufferPointer { b in
                for t in 0..<T {
                    let o = c + t * d
                    o.update(from: b.baseAddress!, count: d)
                    for i in 0..<K {
                        let ti = t + i - pad
                        if ti < 0 || ti >= T { continue }
                        let zr = z + ti * d, wk = w.baseAddress! + i * d
                        for ch in 0..<d { o[ch] += wk[ch] * zr[ch] }
                    }
                }
            }
        }
        lfm_silu(c, T * d)
        pw2(c, rows: T, into: y, act: act, pool: pool)
    }
}

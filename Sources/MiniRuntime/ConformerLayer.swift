import Foundation
import Formats
import CKernels

/// Conformer feed-forward: Linear d→4d, SiLU, Linear 4d→d (used twice per layer, macaron style, at half weight).
final class ConformerFeedForward: Sendable {
    let l1: Linear, l2: Linear
    init(_ L: TensorLoader, prefix p: String, dModel d: Int, ff: Int) throws {
        l1 = try Linear(L, p + "linear1", out: ff, in: d)
        l2 = try Linear(L, p + "linear2", out: d, in: ff)
    }
    func forward(
        _ x: UnsafePointer<Float>, T: Int, out y: UnsafeMutablePointer<Float>, act: Activations, pool: WorkerPool
    ) {
        let h = UnsafeMutablePointer<Float>.allocate(capacity: T * l1.outFeatures); defer { h.deallocate() }
        l1(x, rows: T, into: h, act: act, pool: pool)
        lfm_silu(h, T * l1.outFeatures)
        l2(h, rows: T, into: y, act: act, pool: pool)
    }
}

/// One pre-LN macaron Conformer layer (liquid_audio/model/conformer/modules.py, `ConformerLayer`):
/// r = x + ½FF1(LN(x)); r += MHSA(LN(r)); r += Conv(LN(r)); r += ½FF2(LN(r)); x' = LN_out(r).
/// Checkpoint names `conformer.layers.{i}.*`.
final class ConformerLayer: Sendable {
    let normFF1: LayerNorm, ff1: ConformerFeedForward
    let normAtt: LayerNorm, attention: RelPositionAttention
    let normConv: LayerNorm, conv: ConformerConvolution
    let normFF2: LayerNorm, ff2: ConformerFeedForward
    let normOut: LayerNorm
    let d: Int

    init(_ L: TensorLoader, index i: Int, config e: ConformerConfig) throws {
        let p = "conformer.layers.\(i)."
        d = e.dModel
        normFF1 = try LayerNorm(L, p + "norm_feed_forward1", dim: d)
        ff1 = try ConformerFeedForward(L, prefix: p + "feed_forward1.", dModel: d, ff: e.ffWidth)
        normAtt = try LayerNorm(L, p + "norm_self_att", dim: d)
        attention = try RelPositionAttention(L, prefix: p + "self_attn.", dModel: d, heads: e.nHeads)
        normConv = try LayerNorm(L, p + "norm_conv", dim: d)
        conv = try ConformerConvolution(L, prefix: p + "conv.", layer: i, dModel: d, kernel: e.convKernelSize)
        normFF2 = try LayerNorm(L, p + "norm_feed_forward2", dim: d)
        ff2 = try ConformerFeedForward(L, prefix: p + "feed_forward2.", dModel: d, ff: e.ffWidth)
        normOut = try LayerNorm(L, p + "norm_out", dim: d)
    }

    /// x: T × d, updated in place. pe: the (2T−1) × d position table.
    func forward(_ x: UnsafeMutablePointer<Float>, T: Int, pe: UnsafePointer<Float>, act: Activations, pool: WorkerPool)
    {
        let n = T * d
        let nrm = UnsafeMutablePointer<Float>.allocate(capacity: n),
            o = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { nrm.deallocate(); o.deallocate() }
        normFF1(x, rows: T, into: nrm)
        ff1.forward(nrm, T: T, out: o, act: act, pool: pool)
        for i in 0..<n { x[i] += 0.5 * o[i] }
        normAtt(x, rows: T, into: nrm)
        attention.forward(nrm, T: T, pe: pe, out: o, act: act, pool: pool)
        Ops.add(x, o, n)
        normConv(x, rows: T, into: nrm)
        conv.forward(nrm, T: T, out: o, act: act, pool: pool)
        Ops.add(x, o, n)
        normFF2(x, rows: T, into: nrm)
        ff2.forward(nrm, T: T, out: o, act: act, pool: pool)
        for i in 0..<n { x[i] += 0.5 * o[i] }
        normOut(x, rows: T, into: x)
    }
}

import Foundation
import Formats

/// One LFM2 decoder layer: h = x + Op(RMSNorm(x)); x' = h + FFN(RMSNorm(h)), Op = short conv or attention.
final class LFM2Block {
    enum Operator { case conv(ShortConv), attention(Attention) }
    let op: Operator
    let ffn: FeedForward
    let opNorm: [Float], ffnNorm: [Float]
    let hidden: Int
    let eps: Float

    init(
        _ L: TensorLoader, prefix: String, index i: Int, config c: LFM2Config, rope: RoPE, capacity: Int,
        window: Int? = nil
    ) throws {
        let p = "\(prefix)layers.\(i)."
        hidden = c.hiddenSize
        eps = Float(c.normEps)
        opNorm = try L.floats(p + "operator_norm.weight", shape: [hidden])
        ffnNorm = try L.floats(p + "ffn_norm.weight", shape: [hidden])
        if c.isAttention(i) {
            op = .attention(try Attention(L, prefix: p, config: c, rope: rope, capacity: capacity, window: window))
        } else {
            op = .conv(try ShortConv(L, prefix: p, hidden: hidden, kernelSize: c.convLCache, bias: c.convBias))
        }
        ffn = try FeedForward(L, prefix: p, hidden: hidden, ffn: c.ffnWidth)
    }

    func reset() {
        switch op {
        case .conv(let c): c.reset();
        case .attention(let a): a.reset()
        }
    }

    /// x: T × H, updated in place.
    func forward(_ x: UnsafeMutablePointer<Float>, T: Int, ws: Workspace, pool: WorkerPool) {
        let h = hidden
        let n = ws.norm, o = ws.out
        opNorm.withUnsafeBufferPointer { w in
            for t in 0..<T { Ops.rmsNorm(x + t * h, w.baseAddress!, h, eps: eps, into: n + t * h) }
        }
        switch op {
        case .conv(let c): c.forward(n, T: T, out: o, ws: ws, pool: pool)
        case .attention(let a): a.forward(n, T: T, out: o, ws: ws, pool: pool)
        }
        Ops.add(x, o, T * h)
        ffnNorm.withUnsafeBufferPointer { w in
            for t in 0..<T { Ops.rmsNorm(x + t * h, w.baseAddress!, h, eps: eps, into: n + t * h) }
        }
        ffn.forward(n, T: T, out: o, ws: ws, pool: pool)
        Ops.add(x, o, T * h)
    }
}

/// Scratch buffers for a chunk of up to `maxT` positions.
final class Workspace {
    let maxT: Int
    let norm: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    let big: UnsafeMutablePointer<Float>, mid: UnsafeMutablePointer<Float>
    let act: Activations
    init(maxT: Int, hidden: Int, ffn: Int, qdim: Int, kvdim: Int) {
        self.maxT = maxT
        norm = .allocate(capacity: maxT * hidden); out = .allocate(capacity: maxT * hidden)
        big = .allocate(capacity: maxT * max(3 * hidden, 2 * ffn, qdim + 2 * kvdim))
        mid = .allocate(capacity: maxT * max(qdim, hidden))
        act = Activations(capacity: maxT * max(ffn, qdim, hidden))
    }
    deinit { norm.deallocate(); out.deallocate(); big.deallocate(); mid.deallocate() }
}

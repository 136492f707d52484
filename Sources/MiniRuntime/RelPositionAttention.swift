import Foundation
import Formats
import CKernels

/// Transformer-XL relative-position multi-head self-attention (NeMo `RelPositionMultiHeadAttention`,
/// liquid_audio/model/conformer/mha.py, `RelPositionMultiHeadAttention`): s = ((q+u)·k + (q+v)·p[T−1−i+j]) /
/// √d_k over the whole segment (bidirectional), with p = PE·W_posᵀ (no bias). Per head, the three products run
/// through the matrix kernels on head-major copies.
final class RelPositionAttention: Sendable {
    let q: Linear, k: Linear, v: Linear, out: Linear, pos: Linear
    let u: [Float], vBias: [Float]
    let heads: Int, dk: Int, d: Int

    init(_ L: TensorLoader, prefix p: String, dModel: Int, heads h: Int) throws {
        d = dModel; heads = h; dk = dModel / h
        q = try Linear(L, p + "linear_q", out: d, in: d)
        k = try Linear(L, p + "linear_k", out: d, in: d)
        v = try Linear(L, p + "linear_v", out: d, in: d)
        out = try Linear(L, p + "linear_out", out: d, in: d)
        pos = try Linear(L, p + "linear_pos", out: d, in: d, bias: false)
        u = try L.floats(p + "pos_bias_u", shape: [h, d / h])
        vBias = try L.floats(p + "pos_bias_v", shape: [h, d / h])
    }

    /// Sinusoidal relative positions for T frames: 2T−1 rows for positions T−1 … −(T−1), computed in float32
    /// as the reference does (arange · exp(arange(0, d, 2) · −ln(10⁴)/d), then sin / cos).
    static func positionTable(T: Int, d: Int) -> [Float] {
        var pe = [Float](repeating: 0, count: (2 * T - 1) * d)
        let c = Float(-(log(10000.0) / Double(d)))
        let omega = (0..<(d / 2)).map { m in Float(exp(Double(Float(2 * m) * c))) }
        for kk in 0..<(2 * T - 1) {
            let p = Float(T - 1 - kk)
            for m in 0..<(d / 2) {
                let a = p * omega[m]
                pe[kk * d + 2 * m] = Float(sin(Double(a)))
                pe[kk * d + 2 * m + 1] = Float(cos(Double(a)))
            }
        }
        return pe
    }

    /// x: T × d (normed), pe: (2T−1) × d; out: T × d.
    func forward(
        _ x: UnsafePointer<Float>, T: Int, pe: UnsafePointer<Float>, out y: UnsafeMutablePointer<Float>,
        act: Activations, pool: WorkerPool
    ) {
        let P = 2 * T - 1
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: T * d),
            ks = UnsafeMutablePointer<Float>.allocate(capacity: T * d)
        let vs = UnsafeMutablePointer<Float>.allocate(capacity: T * d),
            ps = UnsafeMutablePointer<Float>.allocate(capacity: P * d)
        let ctx = UnsafeMutablePointer<Float>.allocate(capacity: T * d)
        defer { qs.deallocate(); ks.deallocate(); vs.deallocate(); ps.deallocate(); ctx.deallocate() }
        q(x, rows: T, into: qs, act: act, pool: pool)
        k(x, rows: T, into: ks, act: act, pool: pool)
        v(x, rows: T, into: vs, act: act, pool: pool)
        pos(pe, rows: P, into: ps, act: act, pool: pool)
        let dk = dk, d = d, heads = heads
        let Q = SendablePtr(qs), K = SendablePtr(ks), V = SendablePtr(vs), PS = SendablePtr(ps), C = SendablePtr(ctx)
        let scale = 1 / Float(dk).squareRoot()
        u.withUnsafeBufferPointer { ub in
            vBias.withUnsafeBufferPointer { vb in
                let U = SendablePtr(UnsafeMutablePointer(mutating: ub.baseAddress!)),
                    VB = SendablePtr(UnsafeMutablePointer(mutating: vb.baseAddress!))
                pool.run { ith, nth in
                    // per-thread head-major scratch
                    let kh = UnsafeMutablePointer<Float>.allocate(capacity: T * dk),
                        ph = UnsafeMutablePointer<Float>.allocate(capacity: P * dk)
                    let vt = UnsafeMutablePointer<Float>.allocate(capacity: dk * T)
                    let qu = UnsafeMutablePointer<Float>.allocate(capacity: T * dk),
                        qv = UnsafeMutablePointer<Float>.allocate(capacity: T * dk)
                    let ac = UnsafeMutablePointer<Float>.allocate(capacity: T * T),
                        bd = UnsafeMutablePointer<Float>.allocate(capacity: T * P)
                    defer {
                        kh.deallocate(); ph.deallocate(); vt.deallocate(); qu.deallocate(); qv.deallocate();
                        ac.deallocate(); bd.deallocate()
                    }
                    var h = ith
                    while h < heads {
                        let o = h * dk
                        for t in 0..<T {
                            for i in 0..<dk {
                                let qq = Q.p[t * d + o + i]
                                qu[t * dk + i] = qq + U.p[o + i]
                                qv[t * dk + i] = qq + VB.p[o + i]
                                kh[t * dk + i] = K.p[t * d + o + i]
                                vt[i * T + t] = V.p[t * d + o + i]
                            }
                        }
                        for r in 0..<P { (ph + r * dk).update(from: PS.p + r * d + o, count: dk) }
                        lfm_matmul(
                            Int32(GGMLType.f32.rawValue), kh, Int32(dk), 0, Int32(T), Int32(T), qu, Int32(dk), nil, nil,
                            nil, 0, ac, Int32(T))
                        lfm_matmul(
                            Int32(GGMLType.f32.rawValue), ph, Int32(dk), 0, Int32(P), Int32(T), qv, Int32(dk), nil, nil,
                            nil, 0, bd, Int32(P))
                        for i in 0..<T {
                            let row = ac + i * T, b = bd + i * P + (T - 1 - i)
                            for j in 0..<T { row[j] = (row[j] + b[j]) * scale }
                            lfm_softmax(row, Int32(T))
                        }
                        lfm_matmul(
                            Int32(GGMLType.f32.rawValue), vt, Int32(T), 0, Int32(dk), Int32(T), ac, Int32(T), nil, nil,
                            nil, 0, C.p + o, Int32(d))
                        h += nth
                    }
                }
            }
        }
        out(ctx, rows: T, into: y, act: act, pool: pool)
    }
}

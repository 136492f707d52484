import Foundation

/// SwiGLU feed-forward: w2(silu(w1 x) ⊙ w3 x).
final class FeedForward {
    let w1: Matrix, w3: Matrix, w2: Matrix
    let hidden: Int, ffn: Int
    init(_ L: TensorLoader, prefix p: String, hidden h: Int, ffn f: Int) throws {
        hidden = h; ffn = f
        w1 = try L.matrix(p + "feed_forward.w1.weight", rows: f, cols: h)
        w3 = try L.matrix(p + "feed_forward.w3.weight", rows: f, cols: h)
        w2 = try L.matrix(p + "feed_forward.w2.weight", rows: h, cols: f)
    }
    func forward(_ x: UnsafePointer<Float>, T: Int, out: UnsafeMutablePointer<Float>, ws: Workspace, pool: WorkerPool) {
        let g = ws.big, u = ws.big + T * ffn
        let act = w1.usesQuantizedActivations ? ws.act : nil
        act?.set(x, rows: T, cols: hidden, ld: hidden)
        w1.matmul(x, ldx: hidden, act, rows: T, into: g, ldy: ffn, pool: pool)
        w3.matmul(x, ldx: hidden, act, rows: T, into: u, ldy: ffn, pool: pool)
        Ops.swiglu(g, u, T * ffn, into: g)
        let act2 = w2.usesQuantizedActivations ? ws.act : nil
        act2?.set(g, rows: T, cols: ffn, ld: ffn)
        w2.matmul(g, ldx: ffn, act2, rows: T, into: out, ldy: hidden, pool: pool)
    }
}

import Foundation

/// SwiGLU feed-forward: w2(silu(w1 x) ⊙ w3 x).
final class FeedForward: Sendable {
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
        ws.act.bind(x, rows: T, cols: hidden)
        w1.matmul(ws.act, into: g, ldy: ffn, pool: pool)
        w3.matmul(ws.act, into: u, ldy: ffn, pool: pool)
        for t in 0..<T { Ops.swiglu(g + t * ffn, u + t * ffn, ffn) }  // per row: no lane depends on T
        ws.act.bind(g, rows: T, cols: ffn)
        w2.matmul(ws.act, into: out, ldy: hidden, pool: pool)
    }
}

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
        w3.swigluUp(ws.act, gate: g, up: u, down: w2, next: ws.act2, pool: pool)
        w2.matmul(ws.act2, into: out, ldy: hidden, pool: pool)
    }
}

extension Matrix {
    /// The middle of a SwiGLU block in one job: u = W x (this matrix, the up projection, over the bound rows of
    /// `a`); then, on each thread's own features, g ← silu(g) ⊙ u (g: the gate product, made before) and, when
    /// `down` reads q8 blocks, g's blocks into `next`, which is left bound to g. Features go in pieces of 32 (whole
    /// vector groups of every tier's silu, whole q8 blocks), so every value is what the separate steps give; what
    /// goes is the pass over g on one thread between the products while the others wait (on the Zen 5 machine 2-3 %
    /// of a batched decode round: docs/serving.md).
    func swigluUp(
        _ a: Activations, gate g: UnsafeMutablePointer<Float>, up u: UnsafeMutablePointer<Float>, down: Matrix,
        next: Activations, pool: WorkerPool
    ) {
        let T = a.rows, n = rows
        let byPieces = down.usesQuantizedActivations
        if byPieces { next.bindQuantizingByPieces(g, rows: T, cols: n) } else { next.bind(g, rows: T, cols: n) }
        let gp = SendablePtr(g), up = SendablePtr(u)
        matmul(a, into: u, ldy: n, pool: pool, align: 32) { b, e in
            for t in 0..<T { Ops.swiglu(gp.p + t * n + b, up.p + t * n + b, e - b) }
            if byPieces { next.quantize(columns: b, e) }
        }
    }
}

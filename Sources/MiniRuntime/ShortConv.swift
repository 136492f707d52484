import Foundation

/// LFM2 gated short convolution: BCx = in_proj(x); u = B ⊙ x; v = causal depthwise conv_K(u); y = out_proj(C ⊙ v).
/// Streaming state: the last K−1 values of u per channel.
final class ShortConv: Sendable {
    let inProj: Matrix, outProj: Matrix
    let kernel: [Float]  // [H, K]
    let inBias: [Float]?, convBias: [Float]?, outBias: [Float]?
    let h: Int, k: Int

    init(_ L: TensorLoader, prefix p: String, hidden h: Int, kernelSize k: Int, bias: Bool) throws {
        self.h = h; self.k = k
        inProj = try L.matrix(p + "conv.in_proj.weight", rows: 3 * h, cols: h)
        outProj = try L.matrix(p + "conv.out_proj.weight", rows: h, cols: h)
        kernel = try L.floats(p + "conv.conv.weight", shape: [h, 1, k])
        inBias = bias ? try L.floats(p + "conv.in_proj.bias", shape: [3 * h]) : nil
        convBias = bias ? try L.floats(p + "conv.conv.bias", shape: [h]) : nil
        outBias = bias ? try L.floats(p + "conv.out_proj.bias", shape: [h]) : nil
    }

    func makeState() -> ConvCarry { ConvCarry(count: (k - 1) * h) }

    /// x: T × H (normed input), out: T × H. `carries` holds one carry (the T rows are consecutive positions of one
    /// sequence) or T carries (row t is the next position of sequence t: a batch of decode steps). `ws` provides
    /// scratch of ≥ T × 3H floats.
    func forward(
        _ x: UnsafePointer<Float>, T: Int, out: UnsafeMutablePointer<Float>, carries: [ConvCarry], ws: Workspace,
        pool: WorkerPool
    ) {
        precondition(carries.count == 1 || carries.count == T, "short conv: \(carries.count) carries for \(T) rows")
        let bcx = ws.big
        ws.act.bind(x, rows: T, cols: h)
        inProj.matmul(ws.act, into: bcx, ldy: 3 * h, pool: pool)
        let h = self.h
        if let b = inBias { for t in 0..<T { for i in 0..<3 * h { bcx[t * 3 * h + i] += b[i] } } }
        // u = B ⊙ x, stored over the B slot; then v (into the x slot) = conv over [state; u]
        func gate(_ t: Int) { let r = bcx + t * 3 * h; for c in 0..<h { r[c] = r[c] * r[2 * h + c] } }
        if carries.count == 1 {
            for t in 0..<T { gate(t) }
            convolve(bcx, T: T, carry: carries[0])
        } else {
            // one row per sequence: the sequences are shared among the pool's threads (each thread touches only
            // its own sequences' rows and carries), so this is not one thread's work while the others wait
            pool.forEach(T) { t in
                gate(t)
                convolve(bcx + t * 3 * h, T: 1, carry: carries[t])
            }
        }
        let cv = bcx + 2 * h
        ws.act.bind(cv, rows: T, cols: h, ld: 3 * h)
        outProj.matmul(ws.act, into: out, ldy: h, pool: pool)
        if let b = outBias { for t in 0..<T { for i in 0..<h { out[t * h + i] += b[i] } } }
    }

    /// The causal depthwise conv over T consecutive rows of [B⊙x | C | x] (3H floats each, u in the first slot):
    /// writes C ⊙ v into the x slot and moves the carry on by T positions.
    private func convolve(_ bcx: UnsafeMutablePointer<Float>, T: Int, carry: ConvCarry) {
        let k = self.k, h = self.h
        kernel.withUnsafeBufferPointer { w in
            carry.values.withUnsafeMutableBufferPointer { st in
                for t in 0..<T {
                    let r = bcx + t * 3 * h
                    for c in 0..<h {
                        var v = w[c * k + k - 1] * r[c]
                        for j in 0..<(k - 1) {
                            // tap j multiplies u[t − (k−1) + j]
                            let back = k - 1 - j
                            let u: Float =
                                t - back >= 0 ? bcx[(t - back) * 3 * h + c] : st[(k - 1 - (back - t)) * h + c]
                            v += w[c * k + j] * u
                        }
                        if let cb = convBias { v += cb[c] }
                        r[2 * h + c] = v * r[h + c]  // C ⊙ v
                    }
                }
                // new state: the last K−1 u values (from the state when T < K−1)
                var newState = [Float](repeating: 0, count: (k - 1) * h)
                for s in 0..<(k - 1) {
                    let t = T - (k - 1) + s
                    for c in 0..<h { newState[s * h + c] = t >= 0 ? bcx[t * 3 * h + c] : st[(s + T) * h + c] }
                }
                for i in 0..<newState.count { st[i] = newState[i] }
            }
        }
    }
}

/// A short conv's carry: the last K−1 rows of u, (K−1) × H, oldest first.
final class ConvCarry: StreamingState {
    var values: [Float]
    init(count: Int) { values = [Float](repeating: 0, count: count) }
    func reset() { for i in values.indices { values[i] = 0 } }
    var bytes: Int { values.count * MemoryLayout<Float>.size }
}

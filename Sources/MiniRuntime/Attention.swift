import Foundation
import Formats
import CKernels

/// LFM2 grouped-query attention: q/k RMSNorm per head, half-split (NeoX) RoPE, causal softmax over the KV cache.
final class Attention: Sendable {
    let q: Matrix, k: Matrix, v: Matrix, o: Matrix
    let qNorm: [Float], kNorm: [Float]
    let heads: Int, kvHeads: Int, headDim: Int, hidden: Int
    let eps: Float
    let rope: RoPE
    /// KV-cache capacity in positions.
    let capacity: Int
    /// Sliding window (each query sees itself and the window − 1 previous positions); nil = full causal.
    let window: Int?

    init(
        _ L: TensorLoader, prefix p: String, config c: LFM2Config, rope: RoPE, capacity: Int, window: Int? = nil
    ) throws {
        self.window = window
        heads = c.numAttentionHeads; kvHeads = c.numKeyValueHeads; headDim = c.headDim; hidden = c.hiddenSize
        eps = Float(c.normEps)
        q = try L.matrix(p + "self_attn.q_proj.weight", rows: heads * headDim, cols: hidden)
        k = try L.matrix(p + "self_attn.k_proj.weight", rows: kvHeads * headDim, cols: hidden)
        v = try L.matrix(p + "self_attn.v_proj.weight", rows: kvHeads * headDim, cols: hidden)
        o = try L.matrix(p + "self_attn.out_proj.weight", rows: hidden, cols: heads * headDim)
        qNorm = try L.floats(p + "self_attn.q_layernorm.weight", shape: [headDim])
        kNorm = try L.floats(p + "self_attn.k_layernorm.weight", shape: [headDim])
        self.rope = rope
        self.capacity = capacity
    }

    func makeState(capacity: Int? = nil) -> KVCache {
        KVCache(capacity: capacity ?? self.capacity, width: kvHeads * headDim)
    }

    /// x: T × H normed input; out: T × H. `caches` holds one cache (the T rows are positions length..<length+T of
    /// one sequence) or T caches (row t is the next position of sequence t: a batch of decode steps).
    func forward(
        _ x: UnsafePointer<Float>, T: Int, out: UnsafeMutablePointer<Float>, caches: [KVCache], ws: Workspace,
        pool: WorkerPool
    ) {
        precondition(caches.count == 1 || caches.count == T, "attention: \(caches.count) caches for \(T) rows")
        let qd = heads * headDim, kd = kvHeads * headDim
        let qs = ws.big, ks = ws.big + T * qd, vs = ks + T * kd, att = ws.mid
        ws.act.bind(x, rows: T, cols: hidden)
        q.matmul(ws.act, into: qs, ldy: qd, pool: pool)
        k.matmul(ws.act, into: ks, ldy: kd, pool: pool)
        v.matmul(ws.act, into: vs, ldy: kd, pool: pool)
        // each sequence: rows [first, first + count) at positions p0..<p0+count of its cache
        let seqs: [Sequence] =
            caches.count == 1
            ? [Sequence(cache: caches[0], first: 0, count: T)]
            : caches.enumerated().map { Sequence(cache: $1, first: $0, count: 1) }
        let row = caches.count == 1 ? [Int](repeating: 0, count: T) : Array(0..<T)  // row → sequence
        // q/k norms, rope and the cache write; decode steps of several sequences are shared among the pool's
        // threads (each touches only its own sequences' rows and caches)
        let qp = SendablePtr(qs), kp = SendablePtr(ks), vp = SendablePtr(vs)
        pool.forEach(seqs.count) { i in
            let sq = seqs[i]
            store(sq, qs: qp.p + sq.first * qd, ks: kp.p + sq.first * kd, vs: vp.p + sq.first * kd)
        }
        // softmax(q·kᵀ/√d) v, causal; parallel over (token, head)
        let scale = 1 / Float(headDim).squareRoot()
        let group = heads / kvHeads
        let Q = SendablePtr(qs), A = SendablePtr(att)
        let hd = headDim, nh = heads, win = window ?? Int.max
        let cap = caches.map(\.capacity).max()!
        let S = SendablePtr(ws.scores(pool.threads * cap))
        let views = seqs.map { SeqView($0) }
        pool.run { ith, nth in
            let scores = S.p + ith * cap
            var job = ith
            while job < T * nh {
                let t = job / nh, hh = job % nh
                let sv = views[row[t]]
                let kvh = hh / group
                let end = sv.p0 + (t - sv.first) + 1 - sv.base, start = max(0, end - win), n = end - start
                let qv = Q.p + t * qd + hh * hd
                lfm_attend(
                    qv, Int32(hd), sv.keys.p + start * kd + kvh * hd, sv.values.p + start * kd + kvh * hd, Int32(kd),
                    Int32(n), scale, scores, A.p + t * qd + hh * hd)
                job += nth
            }
        }
        ws.act.bind(att, rows: T, cols: qd)
        o.matmul(ws.act, into: out, ldy: hidden, pool: pool)
    }

    /// One sequence of a forward call and the cache position its first row takes.
    private struct Sequence {
        let cache: KVCache
        let first: Int, count: Int
        let p0: Int
        init(cache: KVCache, first: Int, count: Int) {
            self.cache = cache; self.first = first; self.count = count; p0 = cache.length
        }
    }

    /// What the attention workers read of a sequence once its rows are stored.
    private struct SeqView: @unchecked Sendable {
        let keys: SendablePtr<Float>, values: SendablePtr<Float>
        let first: Int, p0: Int, base: Int
        init(_ s: Sequence) {
            keys = SendablePtr(s.cache.keys); values = SendablePtr(s.cache.values)
            first = s.first; p0 = s.p0; base = s.cache.base
        }
    }

    /// q/k RMSNorm and RoPE on a sequence's rows, then its keys and values into its cache (sliding the window
    /// when the cache is full).
    private func store(
        _ sq: Sequence, qs: UnsafeMutablePointer<Float>, ks: UnsafeMutablePointer<Float>,
        vs: UnsafeMutablePointer<Float>
    ) {
        let cache = sq.cache, T = sq.count, p0 = sq.p0
        let keys = cache.keys, values = cache.values, capacity = cache.capacity
        let qd = heads * headDim, kd = kvHeads * headDim
        qNorm.withUnsafeBufferPointer { qn in
            kNorm.withUnsafeBufferPointer { kn in
                for t in 0..<T {
                    for hh in 0..<heads {
                        let r = qs + t * qd + hh * headDim
                        Ops.rmsNorm(r, qn.baseAddress!, headDim, eps: eps, into: r)
                    }
                    rope.apply(qs + t * qd, position: p0 + t, vectors: heads, stride: headDim)
                    for hh in 0..<kvHeads {
                        let r = ks + t * kd + hh * headDim
                        Ops.rmsNorm(r, kn.baseAddress!, headDim, eps: eps, into: r)
                    }
                    rope.apply(ks + t * kd, position: p0 + t, vectors: kvHeads, stride: headDim)
                }
            }
        }
        var base = cache.base
        if let w = window, p0 - base + T > capacity {
            // keep the last w − 1 positions (all a window can still see) at the front
            let keep = min(w - 1, p0 - base), from = p0 - keep - base
            memmove(keys, keys + from * kd, keep * kd * MemoryLayout<Float>.size)
            memmove(values, values + from * kd, keep * kd * MemoryLayout<Float>.size)
            base = p0 - keep
            cache.base = base
        }
        (keys + (p0 - base) * kd).update(from: ks, count: T * kd)
        (values + (p0 - base) * kd).update(from: vs, count: T * kd)
        cache.length = p0 + T
    }
}

/// An attention layer's KV cache: keys (after norm and RoPE) and values, `capacity` × width floats each. The space
/// is reserved up front and committed by the OS only as positions are written.
final class KVCache: StreamingState {
    let keys: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>
    let capacity: Int, width: Int
    /// Positions written so far; the cache holds positions base..<length (base > 0 only with a window).
    var length = 0
    var base = 0
    init(capacity: Int, width: Int) {
        self.capacity = capacity; self.width = width
        keys = .allocate(capacity: capacity * width)
        values = .allocate(capacity: capacity * width)
    }
    deinit { keys.deallocate(); values.deallocate() }
    func reset() { length = 0; base = 0 }
    var bytes: Int { 2 * capacity * width * MemoryLayout<Float>.size }
}

/// Rotary position embedding, half-split layout (`rotate_half`): pairs (i, i + d/2).
struct RoPE {
    let invFreq: [Float]
    let dim: Int
    init(dim: Int, theta: Double) {
        self.dim = dim
        // as transformers computes it: 1 / θ^(arange(0, d, 2) / d) in float32
        invFreq = (0..<(dim / 2)).map { i in 1 / powf(Float(theta), Float(2 * i) / Float(dim)) }
    }
    func apply(_ x: UnsafeMutablePointer<Float>, position p: Int) { apply(x, position: p, vectors: 1, stride: 0) }
    /// Rotates `n` vectors `stride` floats apart (the heads of one position): the angles are computed once.
    func apply(_ x: UnsafeMutablePointer<Float>, position p: Int, vectors n: Int, stride: Int) {
        rotatePairs(x, invFreq: invFreq, position: p, vectors: n, stride: stride, halfSplit: true)
    }
}

/// Rotary position embedding, adjacent-pair layout (pairs (2i, 2i+1), complex-multiplication style): the
/// depthformer (liquid `apply_rotary_emb`) and Mimi's transformer (Kyutai `apply_rope`) use it. The caller gives the
/// per-pair frequencies as its reference computes them.
struct PairRoPE {
    let invFreq: [Float]
    func apply(_ x: UnsafeMutablePointer<Float>, position p: Int) { apply(x, position: p, vectors: 1, stride: 0) }
    /// Rotates `n` vectors `stride` floats apart (the heads of one position): the angles are computed once.
    func apply(_ x: UnsafeMutablePointer<Float>, position p: Int, vectors n: Int, stride: Int) {
        rotatePairs(x, invFreq: invFreq, position: p, vectors: n, stride: stride, halfSplit: false)
    }
}

/// Rotates `n` vectors `stride` floats apart by the angles p·invFreq[i] (cos and sin computed once, in double):
/// pair i is (i, i + m) in the half-split layout, (2i, 2i + 1) in the adjacent one.
private func rotatePairs(
    _ x: UnsafeMutablePointer<Float>, invFreq: [Float], position p: Int, vectors n: Int, stride: Int, halfSplit: Bool
) {
    let m = invFreq.count
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * m) { cs in
        for i in 0..<m {
            let a = Float(p) * invFreq[i]
            cs[i] = Float(cos(Double(a))); cs[m + i] = Float(sin(Double(a)))
        }
        for v in 0..<n {
            let x = x + v * stride
            for i in 0..<m {
                let i0 = halfSplit ? i : 2 * i, i1 = halfSplit ? i + m : 2 * i + 1
                let c = cs[i], s = cs[m + i], x0 = x[i0], x1 = x[i1]
                x[i0] = x0 * c - x1 * s
                x[i1] = x1 * c + x0 * s
            }
        }
    }
}

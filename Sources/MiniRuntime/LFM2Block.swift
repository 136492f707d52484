import Foundation
import Formats

/// One LFM2 decoder layer: h = x + Op(RMSNorm(x)); x' = h + FFN(RMSNorm(h)), Op = short conv or attention.
final class LFM2Block: Sendable {
    enum Operator: Sendable { case conv(ShortConv), attention(Attention) }
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

    func makeState(capacity: Int? = nil) -> LayerCache {
        switch op {
        case .conv(let c): return .conv(c.makeState())
        case .attention(let a): return .attention(a.makeState(capacity: capacity))
        }
    }

    /// x: T × H, updated in place; `cache` is this layer's state.
    func forward(_ x: UnsafeMutablePointer<Float>, T: Int, cache: LayerCache, ws: Workspace, pool: WorkerPool) {
        forward(x, T: T, caches: [cache], ws: ws, pool: pool)
    }

    /// x: T × H, updated in place. `caches`: this layer's state of one sequence (T consecutive positions), or of T
    /// sequences (row t is the next position of sequence t).
    func forward(_ x: UnsafeMutablePointer<Float>, T: Int, caches: [LayerCache], ws: Workspace, pool: WorkerPool) {
        let h = hidden
        let n = ws.norm, o = ws.out
        opNorm.withUnsafeBufferPointer { w in
            for t in 0..<T { Ops.rmsNorm(x + t * h, w.baseAddress!, h, eps: eps, into: n + t * h) }
        }
        switch op {
        case .conv(let c):
            let carries = caches.map {
                guard case .conv(let carry) = $0 else { preconditionFailure("layer state of another kind") }
                return carry
            }
            c.forward(n, T: T, out: o, carries: carries, ws: ws, pool: pool)
        case .attention(let a):
            let kvs = caches.map {
                guard case .attention(let kv) = $0 else { preconditionFailure("layer state of another kind") }
                return kv
            }
            a.forward(n, T: T, out: o, caches: kvs, ws: ws, pool: pool)
        }
        Ops.add(x, o, T * h)
        ffnNorm.withUnsafeBufferPointer { w in
            for t in 0..<T { Ops.rmsNorm(x + t * h, w.baseAddress!, h, eps: eps, into: n + t * h) }
        }
        ffn.forward(n, T: T, out: o, ws: ws, pool: pool)
        Ops.add(x, o, T * h)
    }
}

/// The state of one LFM2 layer: its conv carry or its KV cache.
enum LayerCache {
    case conv(ConvCarry), attention(KVCache)
    var state: StreamingState {
        switch self {
        case .conv(let c): return c
        case .attention(let a): return a
        }
    }
}

/// The states of a stack of LFM2 layers and the position they have reached.
final class LFM2StackState: StreamingState {
    let layers: [LayerCache]
    var position = 0
    init(_ layers: [LayerCache]) { self.layers = layers }
    func reset() { position = 0; layers.forEach { $0.state.reset() } }
    var bytes: Int { layers.reduce(0) { $0 + $1.state.bytes } }

    /// A point to come back to: the position, every KV cache's extent and a copy of every conv carry (a few
    /// kilobytes per layer; the KV rows themselves stay where they are and are overwritten after a rewind).
    struct Mark {
        let position: Int
        let extents: [(length: Int, base: Int)?]
        let carries: [[Float]?]
    }

    func mark() -> Mark {
        Mark(
            position: position,
            extents: layers.map { if case .attention(let kv) = $0 { (kv.length, kv.base) } else { nil } },
            carries: layers.map { if case .conv(let c) = $0 { c.values } else { nil } })
    }

    /// Back to a mark taken on this state (valid while no sliding window has moved past it).
    func rewind(to m: Mark) {
        position = m.position
        for (i, l) in layers.enumerated() {
            switch l {
            case .attention(let kv): (kv.length, kv.base) = m.extents[i]!
            case .conv(let c): c.values = m.carries[i]!
            }
        }
    }
}

/// Scratch buffers for one forward call of up to `maxT` positions: made per call and dropped after it, so a
/// conversation holds only its caches between steps (a decode step's scratch is a few hundred kilobytes).
final class Workspace {
    let maxT: Int
    let norm: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    let big: UnsafeMutablePointer<Float>, mid: UnsafeMutablePointer<Float>
    let act: Activations
    /// The input of a feed-forward block's down projection (made while `act` is still read: `swigluUp`).
    let act2: Activations
    private var scoreRows: UnsafeMutablePointer<Float>?
    private var scoreCount = 0
    /// `batch`: the rows are decode steps of different sequences (each product runs as per-row matrix-vector
    /// products over one read of the weights, bit-equal to stepping each sequence alone).
    init(maxT: Int, hidden: Int, ffn: Int, qdim: Int, kvdim: Int, batch: Bool = false) {
        self.maxT = maxT
        norm = .allocate(capacity: maxT * hidden); out = .allocate(capacity: maxT * hidden)
        big = .allocate(capacity: maxT * max(3 * hidden, 2 * ffn, qdim + 2 * kvdim))
        mid = .allocate(capacity: maxT * max(qdim, hidden))
        act = Activations(capacity: maxT * max(ffn, qdim, hidden))
        act.independentRows = batch
        act2 = Activations(capacity: maxT * ffn)
        act2.independentRows = batch
    }
    deinit { norm.deallocate(); out.deallocate(); big.deallocate(); mid.deallocate(); scoreRows?.deallocate() }
    /// Softmax scratch of at least `n` floats (one row per worker thread).
    func scores(_ n: Int) -> UnsafeMutablePointer<Float> {
        if let scoreRows, scoreCount >= n { return scoreRows }
        scoreRows?.deallocate()
        let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
        scoreRows = p; scoreCount = n
        return p
    }
}

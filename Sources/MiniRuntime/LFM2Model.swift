import Foundation
import Formats

/// The LFM2 backbone over a mapped bundle: embeddings in, final-normed hidden states and tied-head logits out.
/// Streaming state (KV caches and conv states) lives in the layers; `position` counts consumed positions.
public final class LFM2Backbone {
    public let config: LFM2Config
    let embed: Matrix
    let finalNorm: [Float]
    let layers: [LFM2Block]
    let ws: Workspace
    let pool: WorkerPool
    public let contextLimit: Int
    public private(set) var position = 0
    /// Prefill chunk size (positions per matrix-matrix pass).
    public static let chunk = 256
    let hiddenBuf: UnsafeMutablePointer<Float>
    let logitsBuf: UnsafeMutablePointer<Float>
    let headAct: Activations

    init(_ L: TensorLoader, prefix: String, config c: LFM2Config, contextLimit: Int, pool: WorkerPool) throws {
        config = c
        self.pool = pool
        self.contextLimit = contextLimit
        embed = try L.matrix(prefix + "embed_tokens.weight", rows: c.vocabSize, cols: c.hiddenSize)
        finalNorm = try L.floats(prefix + "embedding_norm.weight", shape: [c.hiddenSize])
        let rope = RoPE(dim: c.headDim, theta: c.ropeTheta)
        layers = try (0..<c.numHiddenLayers).map {
            try LFM2Block(L, prefix: prefix, index: $0, config: c, rope: rope, capacity: contextLimit)
        }
        let qd = c.numAttentionHeads * c.headDim, kvd = c.numKeyValueHeads * c.headDim
        ws = Workspace(maxT: Self.chunk, hidden: c.hiddenSize, ffn: c.ffnWidth, qdim: qd, kvdim: kvd)
        hiddenBuf = .allocate(capacity: Self.chunk * c.hiddenSize)
        logitsBuf = .allocate(capacity: c.vocabSize)
        headAct = Activations(capacity: c.hiddenSize)
    }
    deinit { hiddenBuf.deallocate(); logitsBuf.deallocate() }

    public var hidden: Int { config.hiddenSize }
    public var vocab: Int { config.vocabSize }

    /// Forget everything (a new conversation).
    public func reset() { position = 0; layers.forEach { $0.reset() } }

    /// The input embedding of a token id (a row of the tied table).
    public func embedding(_ id: Int, into out: UnsafeMutablePointer<Float>) { embed.row(id, into: out) }

    /// Runs `T` input embeddings (T × H, row-major) through the backbone at the current position; writes the
    /// final-normed hidden state of the LAST position into `last` (H floats). With `allHidden`, every layer's
    /// output for every position is handed to it (layer index, T × H) — for parity tests.
    public func forward(
        _ x: UnsafePointer<Float>, count T: Int, last: UnsafeMutablePointer<Float>,
        allHidden: ((Int, UnsafePointer<Float>, Int) -> Void)? = nil
    ) throws {
        guard position + T <= contextLimit else {
            throw RuntimeError.contextOverflow(limit: contextLimit, needed: position + T)
        }
        let h = hidden
        var done = 0
        while done < T {
            let n = min(Self.chunk, T - done)
            hiddenBuf.update(from: x + done * h, count: n * h)
            allHidden?(0, hiddenBuf, n)
            for (i, l) in layers.enumerated() {
                l.forward(hiddenBuf, T: n, ws: ws, pool: pool)
                if let cb = allHidden {
                    if i == layers.count - 1 {
                        // transformers' last hidden_states entry is after the final norm
                        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: n * h); defer { tmp.deallocate() }
                        finalNorm.withUnsafeBufferPointer { w in
                            for t in 0..<n {
                                Ops.rmsNorm(
                                    hiddenBuf + t * h, w.baseAddress!, h, eps: Float(config.normEps), into: tmp + t * h)
                            }
                        }
                        cb(i + 1, tmp, n)
                    } else {
                        cb(i + 1, hiddenBuf, n)
                    }
                }
            }
            position += n
            done += n
        }
        let tail = (T - 1) % Self.chunk  // row of the last position in the last chunk
        finalNorm.withUnsafeBufferPointer { w in
            Ops.rmsNorm(hiddenBuf + tail * h, w.baseAddress!, h, eps: Float(config.normEps), into: last)
        }
    }

    /// Runs token ids (their embedding rows) through the backbone; `last` receives the final-normed hidden state
    /// of the last one.
    public func forward(tokens ids: [Int], last: inout [Float]) throws {
        let h = hidden
        var emb = [Float](repeating: 0, count: ids.count * h)
        emb.withUnsafeMutableBufferPointer { e in
            for (i, id) in ids.enumerated() { embedding(id, into: e.baseAddress! + i * h) }
        }
        try emb.withUnsafeBufferPointer { e in
            try last.withUnsafeMutableBufferPointer {
                try forward(e.baseAddress!, count: ids.count, last: $0.baseAddress!)
            }
        }
    }

    /// Text logits of a final-normed hidden state, into an array of `vocab` floats.
    public func logits(_ hiddenState: [Float], into out: inout [Float]) {
        hiddenState.withUnsafeBufferPointer { h in
            out.withUnsafeMutableBufferPointer { logits(h.baseAddress!, into: $0.baseAddress!) }
        }
    }

    /// Tied-head text logits of a final-normed hidden state.
    public func logits(_ hiddenState: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        headAct.bind(hiddenState, rows: 1, cols: hidden)
        embed.matvec(headAct, into: out, pool: pool)
    }
}

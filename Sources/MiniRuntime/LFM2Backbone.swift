import Foundation
import Formats

/// The LFM2 backbone over a mapped bundle (liquid_audio/model/lfm2_audio.py, `LFM2AudioModel.lfm`: transformers'
/// `Lfm2Model`): embeddings in, final-normed hidden states and tied-head logits out. Immutable and shared; the
/// streaming state (KV caches, conv carries, position) is a `LFM2Backbone.State` per conversation.
public final class LFM2Backbone: StreamingModule {
    public let config: LFM2Config
    let embed: Matrix
    let finalNorm: [Float]
    let layers: [LFM2Block]
    let pool: WorkerPool
    /// KV-cache capacity of a state, in positions.
    public let contextLimit: Int
    /// Prefill chunk size (positions per matrix-matrix pass).
    public static let chunk = 256

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
    }

    public var hidden: Int { config.hiddenSize }
    public var vocab: Int { config.vocabSize }

    /// A conversation's backbone state: every layer's cache and the position reached.
    public final class State: StreamingState {
        let stack: LFM2StackState
        /// Receives every layer's output ("lfm.hidden", layer 0 = the input embeddings) when set.
        public var trace: Trace?
        init(_ stack: LFM2StackState) { self.stack = stack }
        /// Positions consumed so far.
        public var position: Int { stack.position }
        public func reset() { stack.reset() }
        public var bytes: Int { stack.bytes }
    }

    public func makeState() -> State { State(LFM2StackState(layers.map { $0.makeState() })) }

    /// A chunk of input embeddings: `count` rows of `hidden` floats.
    public struct Chunk {
        public let embeddings: UnsafePointer<Float>
        public let count: Int
        public init(embeddings: UnsafePointer<Float>, count: Int) { self.embeddings = embeddings; self.count = count }
    }

    /// Runs a chunk at the state's position and returns the final-normed hidden state of its last position.
    public func step(_ input: Chunk, state: State) throws -> [Float] {
        var last = [Float](repeating: 0, count: hidden)
        try last.withUnsafeMutableBufferPointer {
            try forward(input.embeddings, count: input.count, state: state, last: $0.baseAddress!)
        }
        return last
    }

    /// Runs `T` input embeddings (T × H, row-major) at the state's position; writes the final-normed hidden state
    /// of the LAST position into `last` (H floats).
    func forward(_ x: UnsafePointer<Float>, count T: Int, state: State, last: UnsafeMutablePointer<Float>) throws {
        let st = state.stack
        guard st.position + T <= contextLimit else {
            throw RuntimeError.contextOverflow(limit: contextLimit, needed: st.position + T)
        }
        let h = hidden, c = config
        let maxT = min(T, Self.chunk)
        let ws = Workspace(
            maxT: maxT, hidden: h, ffn: c.ffnWidth, qdim: c.numAttentionHeads * c.headDim,
            kvdim: c.numKeyValueHeads * c.headDim)
        let trace = state.trace
        let x0 = UnsafeMutablePointer<Float>.allocate(capacity: maxT * h)
        defer { x0.deallocate() }
        var done = 0
        while done < T {
            let n = min(Self.chunk, T - done)
            x0.update(from: x + done * h, count: n * h)
            trace?(
                TraceEvent(
                    name: "lfm.hidden", layer: 0, values: Array(UnsafeBufferPointer(start: x0, count: n * h)), width: h)
            )
            for (i, l) in layers.enumerated() {
                l.forward(x0, T: n, cache: st.layers[i], ws: ws, pool: pool)
                if let trace {
                    if i == layers.count - 1 {
                        // transformers' last hidden_states entry is after the final norm
                        var normed = [Float](repeating: 0, count: n * h)
                        normed.withUnsafeMutableBufferPointer { o in
                            for t in 0..<n { rmsNorm(x0 + t * h, into: o.baseAddress! + t * h) }
                        }
                        trace(TraceEvent(name: "lfm.hidden", layer: i + 1, values: normed, width: h))
                    } else {
                        trace(
                            TraceEvent(
                                name: "lfm.hidden", layer: i + 1,
                                values: Array(UnsafeBufferPointer(start: x0, count: n * h)), width: h))
                    }
                }
            }
            st.position += n
            done += n
            if done == T { rmsNorm(x0 + (n - 1) * h, into: last) }
        }
    }

    /// One decode step of several conversations at once: row b of `embeddings` (B × H) is the next position of
    /// `states[b]`. The weights are read once for the batch and each row's result is bit-equal to `step` on it
    /// alone. Returns each row's final-normed hidden state. Traces are not recorded (step a traced state alone).
    public func stepBatch(_ embeddings: UnsafePointer<Float>, states: [State]) throws -> [[Float]] {
        let B = states.count, h = hidden, c = config
        guard B > 0 else { return [] }
        precondition(Set(states.map { ObjectIdentifier($0) }).count == B, "a state appears twice in one batch")
        for s in states where s.stack.position + 1 > contextLimit {
            throw RuntimeError.contextOverflow(limit: contextLimit, needed: s.stack.position + 1)
        }
        let ws = Workspace(
            maxT: B, hidden: h, ffn: c.ffnWidth, qdim: c.numAttentionHeads * c.headDim,
            kvdim: c.numKeyValueHeads * c.headDim, batch: true)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: B * h)
        defer { x.deallocate() }
        x.update(from: embeddings, count: B * h)
        for (i, l) in layers.enumerated() {
            l.forward(x, T: B, caches: states.map { $0.stack.layers[i] }, ws: ws, pool: pool)
        }
        return states.enumerated().map { b, s in
            s.stack.position += 1
            var out = [Float](repeating: 0, count: h)
            out.withUnsafeMutableBufferPointer { rmsNorm(x + b * h, into: $0.baseAddress!) }
            return out
        }
    }

    /// Tied-head text logits of several final-normed hidden states (one read of the table; each row bit-equal
    /// to `logits` of it alone).
    func logitsBatch(_ hiddenStates: [[Float]]) -> [[Float]] {
        let B = hiddenStates.count, h = hidden
        if B == 1 { return [logits(hiddenStates[0])] }
        var x = [Float](repeating: 0, count: B * h)
        for (b, hs) in hiddenStates.enumerated() { x.replaceSubrange(b * h..<(b + 1) * h, with: hs) }
        var y = [Float](repeating: 0, count: B * vocab)
        let act = Activations(capacity: B * h)
        act.independentRows = true
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                act.bind(xb.baseAddress!, rows: B, cols: h)
                embed.matmul(act, into: yb.baseAddress!, ldy: vocab, pool: pool)
            }
        }
        return (0..<B).map { Array(y[$0 * vocab..<($0 + 1) * vocab]) }
    }

    func rmsNorm(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        finalNorm.withUnsafeBufferPointer { w in
            Ops.rmsNorm(x, w.baseAddress!, hidden, eps: Float(config.normEps), into: y)
        }
    }

    /// The input embedding of a token id (a row of the tied table).
    @_spi(Tools) public func embedding(_ id: Int, into out: UnsafeMutablePointer<Float>) { embed.row(id, into: out) }

    /// Runs token ids (their embedding rows) through the backbone; returns the final-normed hidden state of the last.
    public func forward(tokens ids: [Int], state: State) throws -> [Float] {
        let h = hidden
        var emb = [Float](repeating: 0, count: ids.count * h)
        emb.withUnsafeMutableBufferPointer { e in
            for (i, id) in ids.enumerated() { embedding(id, into: e.baseAddress! + i * h) }
        }
        return try emb.withUnsafeBufferPointer {
            try step(Chunk(embeddings: $0.baseAddress!, count: ids.count), state: state)
        }
    }

    /// Tied-head text logits of a final-normed hidden state.
    public func logits(_ hiddenState: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: vocab)
        hiddenState.withUnsafeBufferPointer { h in
            out.withUnsafeMutableBufferPointer { logits(h.baseAddress!, into: $0.baseAddress!) }
        }
        return out
    }

    /// Tied-head text logits of a final-normed hidden state.
    func logits(_ hiddenState: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let act = Activations(capacity: hidden)
        act.bind(hiddenState, rows: 1, cols: hidden)
        embed.matvec(act, into: out, pool: pool)
    }
}

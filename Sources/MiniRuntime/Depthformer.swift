import Foundation
import Formats
import CKernels

/// One depthformer layer (liquid `StandardBlock` with `MHA`, liquid_audio/model/transformer.py): RMSNorm → fused QKV
/// → per-head q/k RMSNorm → adjacent-pair RoPE (θ = 1e6, position = codebook index) → GQA attention over the
/// frame's cache → out_proj; then a SwiGLU FFN. The cache holds at most one frame (8 positions) and is reset per
/// frame.
final class DepthformerLayer: Sendable {
    let qkv: Matrix, out: Matrix, w1: Matrix, w3: Matrix, w2: Matrix
    let opNorm: [Float], ffnNorm: [Float], qNorm: [Float], kNorm: [Float]
    let d: Int, heads: Int, kvHeads: Int, hd: Int, ffn: Int
    let rope: PairRoPE
    let maxLen: Int

    init(_ L: TensorLoader, index i: Int, config c: DepthformerConfig, positions: Int) throws {
        let p = "depthformer.layers.\(i)."
        d = c.dim; heads = DepthformerConfig.numHeads; kvHeads = DepthformerConfig.numKVHeads; hd = c.headDim;
        ffn = c.ffnWidth
        qkv = try L.matrix(p + "operator.qkv_proj.weight", rows: c.qkvWidth, cols: d)
        out = try L.matrix(p + "operator.out_proj.weight", rows: d, cols: d)
        w1 = try L.matrix(p + "feed_forward.w1.weight", rows: ffn, cols: d)
        w3 = try L.matrix(p + "feed_forward.w3.weight", rows: ffn, cols: d)
        w2 = try L.matrix(p + "feed_forward.w2.weight", rows: d, cols: ffn)
        opNorm = try L.floats(p + "operator_norm.weight", shape: [d])
        ffnNorm = try L.floats(p + "ffn_norm.weight", shape: [d])
        qNorm = try L.floats(p + "operator.bounded_attention.q_layernorm.weight", shape: [hd])
        kNorm = try L.floats(p + "operator.bounded_attention.k_layernorm.weight", shape: [hd])
        // liquid `precompute_freqs_cis`: 1 / θ^(arange(0, d, 2)[: d/2] / d) in float32
        let headDim = c.headDim
        rope = PairRoPE(invFreq: (0..<(headDim / 2)).map { 1 / powf(1_000_000, Float(2 * $0) / Float(headDim)) })
        maxLen = positions
    }

    func makeState() -> DepthCache { DepthCache(count: maxLen * kvHeads * hd) }

    /// One position of B frames: row b of x (B × d floats, updated in place) is the next codebook of the frame
    /// whose cache is `caches[b]`. `s` is scratch for at least B rows.
    func step(
        _ x: UnsafeMutablePointer<Float>, rows B: Int, caches: [DepthCache], s: DepthScratch, pool: WorkerPool
    ) {
        let kd = kvHeads * hd, qw = d + 2 * kd
        opNorm.withUnsafeBufferPointer { w in
            for b in 0..<B { Ops.rmsNorm(x + b * d, w.baseAddress!, d, eps: 1e-5, into: s.norm + b * d) }
        }
        s.q.bind(s.norm, rows: B, cols: d)
        qkv.matmul(s.q, into: s.qkv, ldy: qw, pool: pool)
        // each frame's q/k norms, rope, cache write and attention; frames of a batch are shared among the pool's
        // threads (each touches only its own frames' rows and caches)
        let qkvRows = SendablePtr(s.qkv), attRows = SendablePtr(s.att), positions = maxLen
        pool.forEach(B) { b in
            let cache = caches[b]
            let row = qkvRows.p + b * qw
            let pos = cache.length
            qNorm.withUnsafeBufferPointer { qn in
                kNorm.withUnsafeBufferPointer { kn in
                    for h in 0..<heads {
                        let r = row + h * hd; Ops.rmsNorm(r, qn.baseAddress!, hd, eps: 1e-5, into: r)
                    }
                    rope.apply(row, position: pos, vectors: heads, stride: hd)
                    for h in 0..<kvHeads {
                        let r = row + d + h * hd; Ops.rmsNorm(r, kn.baseAddress!, hd, eps: 1e-5, into: r)
                    }
                    rope.apply(row + d, position: pos, vectors: kvHeads, stride: hd)
                }
            }
            cache.keys.withUnsafeMutableBufferPointer { K in
                cache.values.withUnsafeMutableBufferPointer { V in
                    (K.baseAddress! + pos * kd).update(from: row + d, count: kd)
                    (V.baseAddress! + pos * kd).update(from: row + d + kd, count: kd)
                    cache.length = pos + 1
                    let n = pos + 1, group = heads / kvHeads, scale = 1 / Float(hd).squareRoot()
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: max(positions, 1)) { sc in
                        for h in 0..<heads {
                            let kvh = h / group
                            lfm_attend(
                                row + h * hd, Int32(hd), K.baseAddress! + kvh * hd, V.baseAddress! + kvh * hd,
                                Int32(kd), Int32(n), scale, sc.baseAddress!, attRows.p + b * d + h * hd)
                        }
                    }
                }
            }
        }
        s.q.bind(s.att, rows: B, cols: d)
        out.matmul(s.q, into: s.tmp, ldy: d, pool: pool)
        Ops.add(x, s.tmp, B * d)
        ffnNorm.withUnsafeBufferPointer { w in
            for b in 0..<B { Ops.rmsNorm(x + b * d, w.baseAddress!, d, eps: 1e-5, into: s.norm + b * d) }
        }
        s.q.bind(s.norm, rows: B, cols: d)
        w1.matmul(s.q, into: s.g, ldy: ffn, pool: pool)
        w3.swigluUp(s.q, gate: s.g, up: s.u, down: w2, next: s.q2, pool: pool)
        w2.matmul(s.q2, into: s.tmp, ldy: d, pool: pool)
        Ops.add(x, s.tmp, B * d)
    }
}

/// A depthformer layer's cache over one frame's codebooks.
final class DepthCache: StreamingState {
    var keys: [Float], values: [Float]
    var length = 0
    init(count: Int) {
        keys = [Float](repeating: 0, count: count); values = [Float](repeating: 0, count: count)
    }
    func reset() { length = 0 }
    var bytes: Int { (keys.count + values.count) * MemoryLayout<Float>.size }
}

/// Scratch for one depthformer frame, or a batch of `rows` frames stepped together.
final class DepthScratch {
    let norm, qkv, att, tmp, g, u: UnsafeMutablePointer<Float>
    let q: Activations
    /// The input of the feed-forward's down projection (`swigluUp`).
    let q2: Activations
    init(d: Int, qkv qw: Int, ffn: Int, hidden: Int, vocab: Int, rows: Int = 1) {
        norm = .allocate(capacity: rows * max(d, hidden)); qkv = .allocate(capacity: rows * max(qw, vocab));
        att = .allocate(capacity: rows * d)
        tmp = .allocate(capacity: rows * max(d, vocab)); g = .allocate(capacity: rows * ffn)
        u = .allocate(capacity: rows * ffn)
        q = Activations(capacity: rows * max(ffn, hidden, 1 << 12))
        q.independentRows = rows > 1
        q2 = Activations(capacity: rows * ffn)
        q2.independentRows = rows > 1
    }
    deinit { for p in [norm, qkv, att, tmp, g, u] { p.deallocate() } }
}

/// The audio head (liquid_audio/model/lfm2_audio.py, `LFM2AudioModel._sample_audio_frame`): `depth_linear` splits the
/// LM hidden state into 8 codebook inputs; the
/// depthformer runs over the 8 codebooks as positions; each codebook's `to_logits(embedding_norm(·))` is sampled
/// and its `embedding` row is added to the next codebook's input. A frame is fed back to the LM as the sum of 8
/// `audio_embedding` rows (code + 2049·k). Checkpoint names: `depthformer.*`, `depth_linear.*`,
/// `depth_embeddings.{k}.*`, `audio_embedding.embedding.weight`.
public final class AudioHead: StreamingModule {
    /// The end-of-audio code (from the bundle's metadata).
    public let endOfAudio: Int
    public let codebooks: Int
    public let vocab = LFM2AudioConfig.audioVocab
    let depthLinear: Linear
    let layers: [DepthformerLayer]
    let embedding: [Matrix], toLogits: [Matrix], embNorm: [[Float]]
    let audioEmbedding: Matrix
    let d: Int, hidden: Int
    let qkvWidth: Int, ffnWidth: Int
    let pool: WorkerPool

    init(_ L: TensorLoader, config c: LFM2AudioConfig, endOfAudio: Int, pool: WorkerPool) throws {
        self.pool = pool
        self.endOfAudio = endOfAudio
        codebooks = c.codebooks; d = c.depthformer.dim; hidden = c.lfm.hiddenSize
        depthLinear = try Linear(L, "depth_linear", out: codebooks * d, in: hidden)
        layers = try (0..<c.depthformer.layers).map {
            try DepthformerLayer(L, index: $0, config: c.depthformer, positions: c.codebooks)
        }
        var e: [Matrix] = [], t: [Matrix] = [], n: [[Float]] = []
        for k in 0..<codebooks {
            e.append(try L.matrix("depth_embeddings.\(k).embedding.weight", rows: vocab, cols: d))
            t.append(try L.matrix("depth_embeddings.\(k).to_logits.weight", rows: vocab, cols: d))
            n.append(try L.floats("depth_embeddings.\(k).embedding_norm.weight", shape: [d]))
        }
        embedding = e; toLogits = t; embNorm = n
        audioEmbedding = try L.matrix("audio_embedding.embedding.weight", rows: vocab * codebooks, cols: hidden)
        qkvWidth = c.depthformer.qkvWidth; ffnWidth = c.depthformer.ffnWidth
    }

    /// The depthformer's per-frame caches (reset at every frame), the audio sampler (its random stream is state
    /// too) and an optional trace of each codebook's logits ("depth.logits", layer = codebook).
    public final class State: StreamingState {
        let layers: StateList<DepthCache>
        @_spi(Tools) public var sampler: Sampler
        public var trace: Trace?
        init(_ layers: [DepthCache], sampling: SamplingParams) {
            self.layers = StateList(layers); sampler = Sampler(sampling)
        }
        public func reset() { layers.reset(); sampler = Sampler(sampler.params) }
        public var bytes: Int { layers.bytes }
    }

    public func makeState() -> State { makeState(sampling: .greedy) }
    public func makeState(sampling: SamplingParams) -> State {
        State(layers.map { $0.makeState() }, sampling: sampling)
    }

    /// One frame from a final-normed LM hidden state (`hidden` floats), sampled with the state's sampler.
    public func step(_ input: [Float], state: State) -> [Int] {
        input.withUnsafeBufferPointer { sampleFrame($0.baseAddress!, state: state) }
    }

    /// Samples one frame of `codebooks` codes from a final-normed LM hidden state. When codebook 0 is EOA the
    /// whole frame becomes EOA (as the reference does).
    func sampleFrame(_ h: UnsafePointer<Float>, state: State) -> [Int] {
        var codes = run(h, state: state) { _, logits in
            logits.withUnsafeMutableBufferPointer { state.sampler.sample($0) }
        }
        if codes[0] == endOfAudio { codes = Array(repeating: endOfAudio, count: codebooks) }
        return codes
    }

    /// Teacher-forced frame: each codebook's logits given the previous codebooks' codes `forced` (parity tools).
    @_spi(Tools) public func frameLogits(_ h: UnsafePointer<Float>, forced: [Int], state: State) -> [[Float]] {
        var out: [[Float]] = []
        _ = run(h, state: state) { k, logits in
            out.append(logits); return forced[k]
        }
        return out
    }

    /// The depthformer over the codebooks; `choose(k, logits)` picks codebook k's code.
    func run(_ h: UnsafePointer<Float>, state: State, choose: (Int, inout [Float]) -> Int) -> [Int] {
        let s = DepthScratch(d: d, qkv: qkvWidth, ffn: ffnWidth, hidden: hidden, vocab: vocab)
        let act = Activations(capacity: hidden)
        var inputs = [Float](repeating: 0, count: codebooks * d)
        inputs.withUnsafeMutableBufferPointer { depthLinear(h, rows: 1, into: $0.baseAddress!, act: act, pool: pool) }
        state.layers.reset()
        var codes: [Int] = []
        var x = [Float](repeating: 0, count: d), prev = [Float](repeating: 0, count: d)
        var logits = [Float](repeating: 0, count: vocab)
        for k in 0..<codebooks {
            for i in 0..<d { x[i] = inputs[k * d + i] + prev[i] }
            x.withUnsafeMutableBufferPointer { xb in
                for (i, l) in layers.enumerated() {
                    l.step(xb.baseAddress!, rows: 1, caches: [state.layers[i]], s: s, pool: pool)
                }
                embNorm[k].withUnsafeBufferPointer {
                    Ops.rmsNorm(xb.baseAddress!, $0.baseAddress!, d, eps: 1e-5, into: s.norm)
                }
            }
            s.q.bind(s.norm, rows: 1, cols: d)
            logits.withUnsafeMutableBufferPointer { toLogits[k].matvec(s.q, into: $0.baseAddress!, pool: pool) }
            state.trace?(TraceEvent(name: "depth.logits", layer: k, values: logits, width: vocab))
            let c = choose(k, &logits)
            codes.append(c)
            prev.withUnsafeMutableBufferPointer { embedding[k].row(c, into: $0.baseAddress!) }
        }
        return codes
    }

    /// One frame for each of several conversations at once (`hiddens[b]` with `states[b]`, each sampled with its
    /// state's sampler): the weights are read once per codebook for the batch and each frame is bit-equal to `step`
    /// on it alone. Traces are not recorded (step a traced state alone).
    public func stepBatch(_ hiddens: [[Float]], states: [State]) -> [[Int]] {
        let B = states.count
        if B == 1 { return [step(hiddens[0], state: states[0])] }
        precondition(hiddens.count == B && Set(states.map { ObjectIdentifier($0) }).count == B)
        let s = DepthScratch(
            d: d, qkv: qkvWidth, ffn: ffnWidth, hidden: hidden, vocab: vocab, rows: B)
        let act = Activations(capacity: B * hidden)
        act.independentRows = true
        var h = [Float](repeating: 0, count: B * hidden)
        for (b, hs) in hiddens.enumerated() { h.replaceSubrange(b * hidden..<(b + 1) * hidden, with: hs) }
        var inputs = [Float](repeating: 0, count: B * codebooks * d)
        h.withUnsafeBufferPointer { hb in
            inputs.withUnsafeMutableBufferPointer {
                depthLinear(hb.baseAddress!, rows: B, into: $0.baseAddress!, act: act, pool: pool)
            }
        }
        for st in states { st.layers.reset() }
        var codes = [[Int]](repeating: [], count: B)
        var x = [Float](repeating: 0, count: B * d), prev = [Float](repeating: 0, count: B * d)
        var logits = [Float](repeating: 0, count: B * vocab)
        for k in 0..<codebooks {
            for b in 0..<B {
                for i in 0..<d { x[b * d + i] = inputs[(b * codebooks + k) * d + i] + prev[b * d + i] }
            }
            x.withUnsafeMutableBufferPointer { xb in
                for (i, l) in layers.enumerated() {
                    l.step(xb.baseAddress!, rows: B, caches: states.map { $0.layers[i] }, s: s, pool: pool)
                }
                embNorm[k].withUnsafeBufferPointer { w in
                    for b in 0..<B {
                        Ops.rmsNorm(xb.baseAddress! + b * d, w.baseAddress!, d, eps: 1e-5, into: s.norm + b * d)
                    }
                }
            }
            s.q.bind(s.norm, rows: B, cols: d)
            logits.withUnsafeMutableBufferPointer {
                toLogits[k].matmul(s.q, into: $0.baseAddress!, ldy: vocab, pool: pool)
            }
            for b in 0..<B {
                let c = logits.withUnsafeMutableBufferPointer {
                    states[b].sampler.sample(UnsafeMutableBufferPointer(rebasing: $0[b * vocab..<(b + 1) * vocab]))
                }
                codes[b].append(c)
                prev.withUnsafeMutableBufferPointer { embedding[k].row(c, into: $0.baseAddress! + b * d) }
            }
        }
        return codes.map { $0[0] == endOfAudio ? Array(repeating: endOfAudio, count: codebooks) : $0 }
    }

    /// The LM input embedding of a frame: Σ_k audio_embedding[code_k + 2049·k].
    @_spi(Tools) public func frameEmbedding(_ codes: [Int], into out: UnsafeMutablePointer<Float>) {
        var row = [Float](repeating: 0, count: hidden)
        for i in 0..<hidden { out[i] = 0 }
        for (k, c) in codes.enumerated() {
            row.withUnsafeMutableBufferPointer { audioEmbedding.row(c + vocab * k, into: $0.baseAddress!) }
            for i in 0..<hidden { out[i] += row[i] }
        }
    }
}

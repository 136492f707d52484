import Foundation
import Formats
import CKernels

/// One layer of Mimi's decoder transformer (liquid_audio/moshi/modules/transformer.py, `StreamingTransformerLayer`):
/// pre-LayerNorm, fused q/k/v without bias,
/// interleaved RoPE (max period 10⁴), causal attention within `context` steps, LayerScale, GELU (erf) MLP.
/// Streaming state: a ring of `context` K/V slots written before attending, as the reference's RingKVCache.
final class MimiTransformerLayer: Sendable {
    let norm1: LayerNorm, norm2: LayerNorm
    let inProj: Matrix, outProj: Matrix, linear1: Matrix, linear2: Matrix
    let scale1: [Float], scale2: [Float]
    let d: Int, heads: Int, hd: Int, ff: Int, context: Int
    let rope: PairRoPE

    init(_ L: TensorLoader, _ p: String, config c: MimiConfig.Transformer) throws {
        d = c.dModel; heads = c.numHeads; hd = c.dModel / c.numHeads; ff = c.dimFeedforward; context = c.context
        norm1 = try LayerNorm(L, p + "norm1", dim: d)
        norm2 = try LayerNorm(L, p + "norm2", dim: d)
        inProj = try L.matrix(p + "self_attn.in_proj_weight", rows: 3 * d, cols: d)
        outProj = try L.matrix(p + "self_attn.out_proj.weight", rows: d, cols: d)
        linear1 = try L.matrix(p + "linear1.weight", rows: ff, cols: d)
        linear2 = try L.matrix(p + "linear2.weight", rows: d, cols: ff)
        scale1 = try L.floats(p + "layer_scale_1.scale", shape: [d])
        scale2 = try L.floats(p + "layer_scale_2.scale", shape: [d])
        // rope.py: exp(arange(D/2) · (−ln(max_period)·2/D)) in float32
        let c32 = Float(-log(Double(c.maxPeriod)) * 2 / Double(c.dModel / c.numHeads))
        let headDim = c.dModel / c.numHeads
        rope = PairRoPE(invFreq: (0..<(headDim / 2)).map { expf(Float($0) * c32) })
    }

    /// The ring of `context` K/V slots ([context][d], slot = position % context) and the positions written.
    final class Ring: StreamingState {
        var keys: [Float], values: [Float]
        var written = 0
        init(count: Int) { keys = [Float](repeating: 0, count: count); values = keys }
        func reset() { written = 0 }
        var bytes: Int { (keys.count + values.count) * MemoryLayout<Float>.size }
    }
    func makeState() -> Ring { Ring(count: context * d) }

    func linear(
        _ m: Matrix, _ x: UnsafePointer<Float>, T: Int, _ y: UnsafeMutablePointer<Float>, act: Activations,
        pool: WorkerPool
    ) {
        act.bind(x, rows: T, cols: m.cols)
        m.matmul(act, into: y, ldy: m.rows, pool: pool)
    }

    /// x: T × d (time-major), updated in place; positions continue from `ring.written`.
    func step(_ x: inout [Float], T: Int, ring: Ring, pool: WorkerPool) {
        let d = d, hd = hd
        let act = Activations(capacity: T * max(d, ff))
        var u = [Float](repeating: 0, count: T * d), qkv = [Float](repeating: 0, count: T * 3 * d)
        var att = [Float](repeating: 0, count: T * d), o = [Float](repeating: 0, count: T * d)
        x.withUnsafeBufferPointer { xb in
            u.withUnsafeMutableBufferPointer { norm1(xb.baseAddress!, rows: T, into: $0.baseAddress!) }
        }
        u.withUnsafeBufferPointer { ub in
            qkv.withUnsafeMutableBufferPointer {
                linear(inProj, ub.baseAddress!, T: T, $0.baseAddress!, act: act, pool: pool)
            }
        }
        let p0 = ring.written
        qkv.withUnsafeMutableBufferPointer { q in
            for t in 0..<T {  // the queries and keys of all heads (adjacent: [q | k | v] per position)
                rope.apply(q.baseAddress! + t * 3 * d, position: p0 + t, vectors: heads, stride: hd)
                rope.apply(q.baseAddress! + t * 3 * d + d, position: p0 + t, vectors: heads, stride: hd)
            }
        }
        // write every new K/V first (RingKVCache.complete), then attend
        for t in 0..<T {
            let slot = (p0 + t) % context
            for i in 0..<d {
                ring.keys[slot * d + i] = qkv[t * 3 * d + d + i]
                ring.values[slot * d + i] = qkv[t * 3 * d + 2 * d + i]
            }
        }
        ring.written = p0 + T
        let latest = ring.written - 1
        let scale = 1 / Float(hd).squareRoot()
        for t in 0..<T {
            let p = p0 + t
            let lo = max(0, latest - context + 1, p - context + 1)
            let n = p - lo + 1
            var sc = [Float](repeating: 0, count: n)
            // the ring may wrap, so keys are visited slot by slot: dot, softmax, then a weighted sum of values
            ring.keys.withUnsafeBufferPointer { K in
                ring.values.withUnsafeBufferPointer { V in
                    qkv.withUnsafeBufferPointer { Q in
                        att.withUnsafeMutableBufferPointer { A in
                            sc.withUnsafeMutableBufferPointer { S in
                                for h in 0..<heads {
                                    let q = Q.baseAddress! + t * 3 * d + h * hd, a = A.baseAddress! + t * d + h * hd
                                    for j in 0..<n {
                                        S[j] =
                                            lfm_dot_f32(q, K.baseAddress! + ((lo + j) % context) * d + h * hd, hd)
                                            * scale
                                    }
                                    lfm_softmax(S.baseAddress!, Int32(n))
                                    for j in 0..<n {
                                        lfm_axpy(S[j], V.baseAddress! + ((lo + j) % context) * d + h * hd, a, hd)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        att.withUnsafeBufferPointer { a in
            o.withUnsafeMutableBufferPointer {
                linear(outProj, a.baseAddress!, T: T, $0.baseAddress!, act: act, pool: pool)
            }
        }
        for t in 0..<T { for i in 0..<d { x[t * d + i] += scale1[i] * o[t * d + i] } }
        x.withUnsafeBufferPointer { xb in
            u.withUnsafeMutableBufferPointer { norm2(xb.baseAddress!, rows: T, into: $0.baseAddress!) }
        }
        var hbuf = [Float](repeating: 0, count: T * ff)
        u.withUnsafeBufferPointer { ub in
            hbuf.withUnsafeMutableBufferPointer {
                linear(linear1, ub.baseAddress!, T: T, $0.baseAddress!, act: act, pool: pool)
            }
        }
        hbuf.withUnsafeMutableBufferPointer { lfm_gelu_erf($0.baseAddress!, T * ff) }
        hbuf.withUnsafeBufferPointer { hb in
            o.withUnsafeMutableBufferPointer {
                linear(linear2, hb.baseAddress!, T: T, $0.baseAddress!, act: act, pool: pool)
            }
        }
        for t in 0..<T { for i in 0..<d { x[t * d + i] += scale2[i] * o[t * d + i] } }
    }
}

/// Mimi's decoder, streamed one code frame at a time with zero lookahead (liquid_audio/moshi/models/compression.py,
/// `MimiModel.decode`): RVQ dequantisation
/// with the converter's precomputed centroids, the depthwise ConvTranspose upsampler 12.5 → 25 Hz, the decoder
/// transformer (2 steps per frame), and the SEANet decoder; 1920 samples at 24 kHz per frame. `reset()` starts a
/// new stream (the reference resets per turn). Past 250 transformer steps (10 s) it behaves as the reference's
/// streaming decode (the ring overwrites the oldest key before the first query of a frame attends), which differs
/// from its batch decode by a negligible amount; under 10 s both are equal.
public final class MimiDecoder: StreamingModule {
    public let config: MimiConfig
    public let codebooks: Int
    public static let sampleRate = MimiConfig.sampleRate
    public var samplesPerFrame: Int { 2 * config.seanet.ratios.reduce(1, *) }
    let centroids: [[Float]]  // codebook k: [bins][dim]
    let projFirst: [Float], projRest: [Float]  // [D][dim]
    let upsample: StreamingConvTranspose1d
    let layers: [MimiTransformerLayer]
    let conv0: StreamingConv1d
    let stages: [(StreamingConvTranspose1d, SEANetResBlock)]
    let convLast: StreamingConv1d
    let pool: WorkerPool

    init(_ L: TensorLoader, config c: MimiConfig, codebooks: Int, pool: WorkerPool) throws {
        config = c; self.codebooks = codebooks; self.pool = pool
        let p = BundleNames.mimiPrefix
        let q = c.quantizer, D = c.seanet.dimension
        centroids = try (0..<codebooks).map {
            try L.floats(BundleNames.mimiCentroids($0), shape: [q.bins, q.dimension])
        }
        projFirst = try L.floats(p + "quantizer.rvq_first.output_proj.weight", shape: [q.outputDimension, q.dimension])
        projRest = try L.floats(p + "quantizer.rvq_rest.output_proj.weight", shape: [q.outputDimension, q.dimension])
        upsample = try StreamingConvTranspose1d(
            L, p + "upsample.convtr.convtr.convtr", cin: D, cout: D, kernel: 4, stride: 2, bias: false, depthwise: true,
            pool: pool)
        layers = try (0..<c.transformer.numLayers).map {
            try MimiTransformerLayer(L, p + "decoder_transformer.transformer.layers.\($0).", config: c.transformer)
        }
        let s = c.seanet
        var ch = s.nFilters << s.ratios.count
        conv0 = try StreamingConv1d(
            L, p + "decoder.model.0.conv.conv", cin: D, cout: ch, kernel: s.kernelSize, pool: pool)
        var st: [(StreamingConvTranspose1d, SEANetResBlock)] = []
        var idx = 0
        for r in s.ratios {
            let tr = try StreamingConvTranspose1d(
                L, p + "decoder.model.\(idx + 2).convtr.convtr", cin: ch, cout: ch / 2, kernel: 2 * r, stride: r,
                pool: pool)
            let rb = try SEANetResBlock(
                L, p + "decoder.model.\(idx + 3)", dim: ch / 2, hidden: ch / 2 / s.compress,
                kernel: s.residualKernelSize, pool: pool)
            st.append((tr, rb)); ch /= 2; idx += 3
        }
        stages = st
        convLast = try StreamingConv1d(
            L, p + "decoder.model.\(idx + 2).conv.conv", cin: ch, cout: s.channels, kernel: s.lastKernelSize, pool: pool
        )
    }

    /// A decoding stream's state: every conv carry and transformer ring, and an optional trace of the stages
    /// ("mimi.latent", "mimi.upsampled", "mimi.transformer_out", "mimi.seanet.N"; time-major rows).
    public final class State: StreamingState {
        let upsample: StreamingConv1d.Carry
        let layers: StateList<MimiTransformerLayer.Ring>
        let conv0: StreamingConv1d.Carry
        let stages: [(StreamingConv1d.Carry, StateList<StreamingConv1d.Carry>)]
        let convLast: StreamingConv1d.Carry
        public var trace: Trace?
        init(_ m: MimiDecoder) {
            upsample = m.upsample.makeState(); layers = StateList(m.layers.map { $0.makeState() })
            conv0 = m.conv0.makeState(); stages = m.stages.map { ($0.0.makeState(), $0.1.makeState()) }
            convLast = m.convLast.makeState()
        }
        public func reset() {
            upsample.reset(); layers.reset(); conv0.reset(); convLast.reset()
            for (a, b) in stages { a.reset(); b.reset() }
        }
        public var bytes: Int {
            upsample.bytes + layers.bytes + conv0.bytes + convLast.bytes
                + stages.reduce(0) { $0 + $1.0.bytes + $1.1.bytes }
        }
    }
    public func makeState() -> State { State(self) }

    /// The 512-d latent of one frame: W_first·E₀[c₀] + W_rest·Σ_k E_k[c_k].
    func latent(_ codes: [Int]) -> [Float] {
        let q = config.quantizer, dim = q.dimension, D = q.outputDimension
        var a = [Float](repeating: 0, count: dim)
        for k in 1..<codebooks { for i in 0..<dim { a[i] += centroids[k][codes[k] * dim + i] } }
        var out = [Float](repeating: 0, count: D)
        for o in 0..<D {
            var s1: Float = 0, s2: Float = 0
            for i in 0..<dim {
                s1 += projFirst[o * dim + i] * centroids[0][codes[0] * dim + i]; s2 += projRest[o * dim + i] * a[i]
            }
            out[o] = s1 + s2
        }
        return out
    }

    /// Decodes one frame of `codebooks` codes (0…2047) into `samplesPerFrame` samples.
    public func step(_ codes: [Int], state: State) throws -> [Float] {
        guard codes.count == codebooks, codes.allSatisfy({ $0 >= 0 && $0 < config.quantizer.bins }) else {
            throw RuntimeError.badInput(
                "Mimi: a frame must hold \(codebooks) codes in 0…\(config.quantizer.bins - 1), got \(codes)")
        }
        let lat = latent(codes)
        let D = config.seanet.dimension
        let trace = state.trace
        trace?(TraceEvent(name: "mimi.latent", values: lat, width: D))
        var x = upsample.step(lat, T: 1, state: state.upsample)  // 2 × D
        trace?(TraceEvent(name: "mimi.upsampled", values: x, width: D))
        for (i, l) in layers.enumerated() { l.step(&x, T: 2, ring: state.layers[i], pool: pool) }
        trace?(TraceEvent(name: "mimi.transformer_out", values: x, width: D))
        var T = 2
        var y = conv0.step(x, T: T, state: state.conv0)
        trace?(TraceEvent(name: "mimi.seanet.0", values: y, width: conv0.cout))
        var idx = 0
        for (i, (tr, rb)) in stages.enumerated() {
            y = tr.step(elu(y), T: T, state: state.stages[i].0); T *= tr.stride
            trace?(TraceEvent(name: "mimi.seanet.\(idx + 2)", values: y, width: tr.cout))
            y = rb.step(y, state: state.stages[i].1)
            trace?(TraceEvent(name: "mimi.seanet.\(idx + 3)", values: y, width: tr.cout))
            idx += 3
        }
        return convLast.step(elu(y), T: T, state: state.convLast)
    }
}

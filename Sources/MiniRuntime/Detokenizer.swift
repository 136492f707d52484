import Foundation
import Formats
import CKernels

/// The LFM2 audio detokenizer (liquid_audio/detokenizer.py, `LFM2AudioDetokenizer` and `ISTFT`), streamed frame by
/// frame with exactly the reference's batch output:
/// mean of the 8 code embeddings, repeated 6× (75 Hz), an LFM2 stack whose attention sees a window of 30 positions
/// (self + 29 previous), the final RMSNorm, `lin` to 641 log-magnitudes ‖ 641 phases, and an inverse STFT
/// (n_fft = win = 1280, hop 320, periodic Hann, Σw² envelope, "same" trim of 480). Samples are emitted once every
/// STFT frame that covers them has arrived (20 ms lookahead): frame 0 gives 1440 samples, later frames 1920, and
/// `flush()` the last 480. Checkpoint names: `detokenizer.*` (the `audio_detokenizer/` folder).
public final class Detokenizer: StreamingModule, @unchecked Sendable {
    // @unchecked: `idft` is written once in init and only read afterwards.
    public let config: LFM2Config
    public let window: Int
    public static let sampleRate = 24000
    static let upsample = 6, nFFT = DetokenizerConfig.nFFT, hop = DetokenizerConfig.hop,
        bins = DetokenizerConfig.nFFT / 2 + 1
    let codebooks = DetokenizerConfig.codebooks, codebookSize = DetokenizerConfig.codebookSize
    let emb: Matrix
    let layers: [LFM2Block]
    let finalNorm: [Float]
    let lin: Linear
    let pool: WorkerPool
    /// The synthesis window (`istft.window`).
    let hann: [Float]
    /// Inverse real DFT with the window folded in: [1280 rows][1282 cols] (cos part, then −sin part), 1/N included.
    let idft: UnsafeMutablePointer<Float>
    let idftMatrix: Matrix
    /// KV rows of a state: the window and 64 more before the cache is compacted.
    let capacity: Int

    /// A stream's state: the LFM2 stack's caches, the overlap-add accumulators, and an optional trace ("detok.emb"
    /// per code frame, "detok.hidden", "detok.spectra" per STFT frame).
    public final class State: StreamingState {
        let stack: LFM2StackState
        /// Overlap-add accumulators for samples p ≥ `olaStart` (signal and Σw²).
        var ola: [Float] = [], env: [Float] = []
        var olaStart = 0
        var emittedTo = 0  // samples p < emittedTo were emitted (or skipped)
        var frames = 0  // STFT frames received
        public var trace: Trace?
        init(_ stack: LFM2StackState) { self.stack = stack }
        public func reset() { stack.reset(); ola = []; env = []; olaStart = 0; emittedTo = 0; frames = 0 }
        public var bytes: Int { stack.bytes + (ola.count + env.count) * MemoryLayout<Float>.size }
    }

    public func makeState() -> State { makeState(capacity: capacity) }
    /// A state whose KV caches hold `capacity` rows (at least the window and a frame; tests vary it).
    func makeState(capacity: Int) -> State {
        State(LFM2StackState(layers.map { $0.makeState(capacity: max(capacity, window + Self.upsample)) }))
    }

    init(_ L: TensorLoader, config c: LFM2Config, pool: WorkerPool) throws {
        config = c; self.pool = pool
        window = c.slidingWindow ?? 30
        let p = BundleNames.detokenizerPrefix
        let h = c.hiddenSize
        guard h == DetokenizerConfig.width else {
            throw RuntimeError.badInput("\(L.file): detokenizer hidden size \(h), expected \(DetokenizerConfig.width)")
        }
        emb = try L.matrix(p + "emb.emb.weight", rows: codebooks * codebookSize, cols: h)
        let rope = RoPE(dim: c.headDim, theta: c.ropeTheta)
        let win = c.slidingWindow ?? 30, cap = win + 64
        capacity = cap
        layers = try (0..<c.numHiddenLayers).map {
            try LFM2Block(L, prefix: p + "lfm.", index: $0, config: c, rope: rope, capacity: cap, window: win)
        }
        finalNorm = try L.floats(p + "lfm.embedding_norm.weight", shape: [h])
        lin = try Linear(L, p + "lin", out: DetokenizerConfig.outputSize, in: h)
        let stored = try L.floats(p + "istft.window", shape: [Self.nFFT])
        let N = Self.nFFT
        // the reference synthesises with the stored buffer (periodic Hann in released checkpoints), dividing by Σw²
        hann = stored
        guard stored.allSatisfy({ $0.isFinite }) else {
            throw RuntimeError.badInput("\(L.file): detokenizer.istft.window holds non-finite values")
        }
        let B = Self.bins
        idft = .allocate(capacity: N * 2 * B)
        for n in 0..<N {
            for f in 0..<B {
                let a: Double = (f == 0 || f == B - 1) ? 1 : 2
                let ang = 2 * Double.pi * Double(f * n % N) / Double(N)
                idft[n * 2 * B + f] = Float(Double(stored[n]) * a * cos(ang) / Double(N))
                idft[n * 2 * B + B + f] =
                    (f == 0 || f == B - 1) ? 0 : Float(-Double(stored[n]) * a * sin(ang) / Double(N))
            }
        }
        idftMatrix = Matrix(name: "istft", type: .f32, data: UnsafeRawPointer(idft), rows: N, cols: 2 * B)
    }
    deinit { idft.deallocate() }

    /// Samples of one code frame (1440 for the first frame of an utterance, then 1920).
    public func step(_ codes: [Int], state: State) throws -> [Float] {
        guard codes.count == codebooks, codes.allSatisfy({ $0 >= 0 && $0 < codebookSize }) else {
            throw RuntimeError.badInput(
                "detokenizer: a frame must hold \(codebooks) codes in 0…\(codebookSize - 1), got \(codes)")
        }
        let h = config.hiddenSize, U = Self.upsample, c = config
        let ws = Workspace(
            maxT: U, hidden: h, ffn: c.ffnWidth, qdim: c.numAttentionHeads * c.headDim,
            kvdim: c.numKeyValueHeads * c.headDim)
        let act = Activations(capacity: U * h)
        let trace = state.trace
        var e = [Float](repeating: 0, count: h), row = [Float](repeating: 0, count: h)
        for (k, c) in codes.enumerated() {
            row.withUnsafeMutableBufferPointer { emb.row(k * codebookSize + c, into: $0.baseAddress!) }
            for i in 0..<h { e[i] += row[i] }
        }
        for i in 0..<h { e[i] /= Float(codebooks) }
        trace?(TraceEvent(name: "detok.emb", values: e, width: h))
        var x = [Float](repeating: 0, count: U * h)
        for r in 0..<U { for i in 0..<h { x[r * h + i] = e[i] } }
        var spectra = [Float](repeating: 0, count: U * DetokenizerConfig.outputSize)
        x.withUnsafeMutableBufferPointer { xb in
            for (i, l) in layers.enumerated() {
                l.forward(xb.baseAddress!, T: U, cache: state.stack.layers[i], ws: ws, pool: pool)
            }
            finalNorm.withUnsafeBufferPointer { w in
                for t in 0..<U {
                    Ops.rmsNorm(
                        xb.baseAddress! + t * h, w.baseAddress!, h, eps: Float(config.normEps),
                        into: xb.baseAddress! + t * h)
                }
            }
        }
        state.stack.position += U
        trace?(TraceEvent(name: "detok.hidden", values: x, width: h))
        x.withUnsafeBufferPointer { xb in
            spectra.withUnsafeMutableBufferPointer {
                lin(xb.baseAddress!, rows: U, into: $0.baseAddress!, act: act, pool: pool)
            }
        }
        trace?(TraceEvent(name: "detok.spectra", values: spectra, width: DetokenizerConfig.outputSize))
        // polar → (re, im), inverse DFT with the window, overlap-add
        let B = Self.bins, N = Self.nFFT, O = DetokenizerConfig.outputSize
        var ri = [Float](repeating: 0, count: U * 2 * B)
        for t in 0..<U {
            for f in 0..<B {
                let m = expf(spectra[t * O + f]), ph = spectra[t * O + B + f]
                ri[t * 2 * B + f] = m * Float(cos(Double(ph)))
                ri[t * 2 * B + B + f] = m * Float(sin(Double(ph)))
            }
        }
        var frameOut = [Float](repeating: 0, count: U * N)
        ri.withUnsafeBufferPointer { r in
            frameOut.withUnsafeMutableBufferPointer { o in
                idftMatrix.matmul(r.baseAddress!, ldx: 2 * B, rows: U, into: o.baseAddress!, ldy: N, pool: pool)
            }
        }
        var out: [Float] = []
        let s = state
        for t in 0..<U {
            let j = s.frames, start = j * Self.hop
            let need = start + N - s.olaStart
            if s.ola.count < need {
                s.ola += [Float](repeating: 0, count: need - s.ola.count)
                s.env += [Float](repeating: 0, count: need - s.env.count)
            }
            for n in 0..<N {
                s.ola[start - s.olaStart + n] += frameOut[t * N + n]
                s.env[start - s.olaStart + n] += hann[n] * hann[n]
            }
            s.frames += 1
            out += emit(upTo: (j + 1) * Self.hop, state: s)
        }
        return out
    }

    /// Emits samples p < `end` (skipping the first 480 of the utterance).
    func emit(upTo end: Int, state s: State) -> [Float] {
        let skip = (Self.nFFT - Self.hop) / 2
        var out: [Float] = []
        out.reserveCapacity(max(0, end - s.emittedTo))
        for p in s.emittedTo..<end where p >= skip { out.append(s.ola[p - s.olaStart] / s.env[p - s.olaStart]) }
        s.emittedTo = max(s.emittedTo, end)
        // drop what is no longer needed
        let drop = s.emittedTo - s.olaStart
        if drop > 4096 { s.ola.removeFirst(drop); s.env.removeFirst(drop); s.olaStart = s.emittedTo }
        return out
    }

    /// The last 480 samples of the utterance (normalised by the partial envelope, as the reference's batch ISTFT).
    public func flush(state: State) -> [Float] {
        guard state.frames > 0 else { return [] }
        let skip = (Self.nFFT - Self.hop) / 2
        return emit(upTo: state.frames * Self.hop + skip, state: state)
    }
}

import Foundation
import Formats
import CKernels

/// The LFM2 audio detokenizer (liquid_audio/detokenizer.py, `LFM2AudioDetokenizer` and `ISTFT`), streamed frame by frame with exactly the reference's batch output:
/// mean of the 8 code embeddings, repeated 6× (75 Hz), an LFM2 stack whose attention sees a window of 30 positions
/// (self + 29 previous), the final RMSNorm, `lin` to 641 log-magnitudes ‖ 641 phases, and an inverse STFT
/// (n_fft = win = 1280, hop 320, periodic Hann, Σw² envelope, "same" trim of 480). Samples are emitted once every
/// STFT frame that covers them has arrived (20 ms lookahead): frame 0 gives 1440 samples, later frames 1920, and
/// `flush()` the last 480. Checkpoint names: `detokenizer.*` (the `audio_detokenizer/` folder).
public final class Detokenizer: @unchecked Sendable {
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
    let ws: Workspace
    let act = Activations(capacity: 1 << 14)
    let pool: WorkerPool
    /// The synthesis window (`istft.window`).
    let hann: [Float]
    /// Inverse real DFT with the window folded in: [1280 rows][1282 cols] (cos part, then −sin part), 1/N included.
    let idft: UnsafeMutablePointer<Float>
    let idftMatrix: Matrix
    var position = 0
    /// Overlap-add accumulators for samples p ≥ `olaStart` (signal and Σw²).
    var ola: [Float] = [], env: [Float] = []
    var olaStart = 0
    var emittedTo = 0  // samples p < emittedTo were emitted (or skipped)
    var frames = 0  // STFT frames received
    /// Called with (stage, rows, width) for parity tests: "emb" (per code frame), "hidden", "spectra" (per STFT frame).
    public var stageObserver: ((String, [Float], Int) -> Void)?

    /// `extraCapacity`: KV rows kept beyond the window before the cache is compacted (tests vary it).
    init(_ L: TensorLoader, config c: LFM2Config, pool: WorkerPool, extraCapacity: Int = 64) throws {
        config = c; self.pool = pool
        window = c.slidingWindow ?? 30
        let p = "detokenizer."
        let h = c.hiddenSize
        guard h == DetokenizerConfig.width else {
            throw RuntimeError.badInput("\(L.file): detokenizer hidden size \(h), expected \(DetokenizerConfig.width)")
        }
        emb = try L.matrix(p + "emb.emb.weight", rows: codebooks * codebookSize, cols: h)
        let rope = RoPE(dim: c.headDim, theta: c.ropeTheta)
        let win = c.slidingWindow ?? 30, cap = win + max(extraCapacity, Self.upsample)
        layers = try (0..<c.numHiddenLayers).map {
            try LFM2Block(L, prefix: p + "lfm.", index: $0, config: c, rope: rope, capacity: cap, window: win)
        }
        finalNorm = try L.floats(p + "lfm.embedding_norm.weight", shape: [h])
        lin = try Linear(L, p + "lin", out: DetokenizerConfig.outputSize, in: h)
        let stored = try L.floats(p + "istft.window", shape: [Self.nFFT])
        let N = Self.nFFT
        // the reference synthesises with the stored buffer (a periodic Hann in released checkpoints) and divides by Σw²
        hann = stored
        guard stored.allSatisfy({ $0.isFinite }) else {
            throw RuntimeError.badInput("\(L.file): detokenizer.istft.window holds non-finite values")
        }
        let qd = c.numAttentionHeads * c.headDim, kvd = c.numKeyValueHeads * c.headDim
        ws = Workspace(maxT: Self.upsample, hidden: h, ffn: c.ffnWidth, qdim: qd, kvdim: kvd)
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

    /// Starts a new utterance.
    public func reset() {
        layers.forEach { $0.reset() }
        position = 0; ola = []; env = []; olaStart = 0; emittedTo = 0; frames = 0
    }

    /// Samples of one code frame (1440 for the first frame of an utterance, then 1920).
    public func decode(frame codes: [Int]) throws -> [Float] {
        guard codes.count == codebooks, codes.allSatisfy({ $0 >= 0 && $0 < codebookSize }) else {
            throw RuntimeError.badInput(
                "detokenizer: a frame must hold \(codebooks) codes in 0…\(codebookSize - 1), got \(codes)")
        }
        let h = config.hiddenSize, U = Self.upsample
        var e = [Float](repeating: 0, count: h), row = [Float](repeating: 0, count: h)
        for (k, c) in codes.enumerated() {
            row.withUnsafeMutableBufferPointer { emb.row(k * codebookSize + c, into: $0.baseAddress!) }
            for i in 0..<h { e[i] += row[i] }
        }
        for i in 0..<h { e[i] /= Float(codebooks) }
        stageObserver?("emb", e, h)
        var x = [Float](repeating: 0, count: U * h)
        for r in 0..<U { for i in 0..<h { x[r * h + i] = e[i] } }
        var spectra = [Float](repeating: 0, count: U * DetokenizerConfig.outputSize)
        x.withUnsafeMutableBufferPointer { xb in
            for l in layers { l.forward(xb.baseAddress!, T: U, ws: ws, pool: pool) }
            finalNorm.withUnsafeBufferPointer { w in
                for t in 0..<U {
                    Ops.rmsNorm(
                        xb.baseAddress! + t * h, w.baseAddress!, h, eps: Float(config.normEps),
                        into: xb.baseAddress! + t * h)
                }
            }
        }
        position += U
        stageObserver?("hidden", x, h)
        x.withUnsafeBufferPointer { xb in
            spectra.withUnsafeMutableBufferPointer {
                lin(xb.baseAddress!, rows: U, into: $0.baseAddress!, act: act, pool: pool)
            }
        }
        stageObserver?("spectra", spectra, DetokenizerConfig.outputSize)
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
        for t in 0..<U {
            let j = frames, start = j * Self.hop
            let need = start + N - olaStart
            if ola.count < need {
                ola += [Float](repeating: 0, count: need - ola.count);
                env += [Float](repeating: 0, count: need - env.count)
            }
            for n in 0..<N {
                ola[start - olaStart + n] += frameOut[t * N + n]; env[start - olaStart + n] += hann[n] * hann[n]
            }
            frames += 1
            out += emit(upTo: (j + 1) * Self.hop)
        }
        return out
    }

    /// Emits samples p < `end` (skipping the first 480 of the utterance).
    func emit(upTo end: Int) -> [Float] {
        let skip = (Self.nFFT - Self.hop) / 2
        var out: [Float] = []
        out.reserveCapacity(max(0, end - emittedTo))
        for p in emittedTo..<end where p >= skip { out.append(ola[p - olaStart] / env[p - olaStart]) }
        emittedTo = max(emittedTo, end)
        // drop what is no longer needed
        let drop = emittedTo - olaStart
        if drop > 4096 { ola.removeFirst(drop); env.removeFirst(drop); olaStart = emittedTo }
        return out
    }

    /// The last 480 samples of the utterance (normalised by the partial envelope, as the reference's batch ISTFT).
    public func flush() -> [Float] {
        guard frames > 0 else { return [] }
        let skip = (Self.nFFT - Self.hop) / 2
        return emit(upTo: frames * Self.hop + skip)
    }
}

import Foundation
import Formats
import CKernels
import Synchronization

/// Timings of one audio encoding, in seconds.
public struct AudioEncodeStats: Sendable, Codable {
    public var audioSeconds = 0.0
    public var resampleSeconds = 0.0
    public var melSeconds = 0.0
    public var encoderSeconds = 0.0
    public var adapterSeconds = 0.0
    public var melFrames = 0
    public var positions = 0
    public init() {}
}

/// Audio embeddings ready for the LFM2 input sequence: `count` rows of `hidden` floats.
public struct AudioEmbeddings: Sendable {
    public var values: [Float]
    public var count: Int
    public var hidden: Int
    public var stats: AudioEncodeStats
    public init(values: [Float], count: Int, hidden: Int, stats: AudioEncodeStats = AudioEncodeStats()) {
        self.values = values; self.count = count; self.hidden = hidden; self.stats = stats
    }
}

/// The whole audio input path (liquid_audio/processor.py `ChatState.add_audio`, liquid_audio/model/conformer/encoder.py
/// `ConformerEncoder`): mono samples → 16 kHz (torchaudio-exact resampler) → log-mel →
/// FastConformer (dw_striding subsampling + rel-pos Conformer layers) → audio adapter. Each call encodes one
/// segment offline, as the reference's `_prefill` does; ceil(mel_frames / 8) positions come out.
public final class AudioEncoder: Sendable {
    public let config: ConformerConfig
    public let preprocessor: PreprocessorConfig
    let mel: MelFrontEnd
    let subsampling: Subsampling
    let layers: [ConformerLayer]
    let adapter: AudioAdapter
    let pool: WorkerPool
    /// Resamplers made so far, by input rate.
    private let resamplers = Mutex<[Int: Resampler]>([:])

    init(_ L: TensorLoader, config c: LFM2AudioConfig, pool: WorkerPool) throws {
        config = c.encoder; preprocessor = c.preprocessor
        self.pool = pool
        mel = try MelFrontEnd(config: c.preprocessor)
        guard c.encoder.featIn == mel.nMels else {
            throw RuntimeError.badInput(
                "\(L.file): encoder.feat_in \(c.encoder.featIn) differs from preprocessor.features \(mel.nMels)")
        }
        subsampling = try Subsampling(L, config: c.encoder)
        layers = try (0..<c.encoder.nLayers).map { try ConformerLayer(L, index: $0, config: c.encoder) }
        adapter = try AudioAdapter(L, inDim: c.encoder.dModel, hidden: c.lfm.hiddenSize)
    }

    public var sampleRate: Int { preprocessor.sampleRate }
    public var hidden: Int { adapter.outFeatures }

    /// Positions a clip of `samples` samples at the model rate takes in the prompt: ceil(mel_frames / 8).
    public func positions(samples: Int) -> Int { subsampling.outputLength(mel.frameCount(samples: samples)) }

    /// Mono samples at the model's sample rate (identity when already there).
    @_spi(Tools) public func resample(_ clip: AudioClip) throws -> [Float] {
        if clip.sampleRate == sampleRate { return clip.samples }
        let r = try resamplers.withLock { cache in
            if let r = cache[clip.sampleRate] { return r }
            let r = try Resampler(from: clip.sampleRate, to: sampleRate)
            cache[clip.sampleRate] = r
            return r
        }
        return r.process(clip.samples)
    }

    /// Log-mel features ([features][T], T = floor(N/hop) + 1) of model-rate samples.
    @_spi(Tools) public func melFeatures(_ samples: [Float]) -> [[Float]] { mel.features(samples).mel }

    /// The conformer on log-mel features: [T'][d_model]. A trace sees the subsampling output ("conformer.layer",
    /// layer 0) and every layer's output (layer i + 1).
    @_spi(Tools) public func conformer(mel m: [[Float]], trace: Trace? = nil) -> [Float] {
        let act = Activations(capacity: 1 << 16)
        var x = subsampling.forward(mel: m, act: act, pool: pool)
        let d = config.dModel, T = x.count / d
        trace?(TraceEvent(name: "conformer.layer", layer: 0, values: x, width: d))
        let pe = RelPositionAttention.positionTable(T: T, d: d)
        x.withUnsafeMutableBufferPointer { xb in
            pe.withUnsafeBufferPointer { p in
                for (i, l) in layers.enumerated() {
                    l.forward(xb.baseAddress!, T: T, pe: p.baseAddress!, act: act, pool: pool)
                    trace?(TraceEvent(name: "conformer.layer", layer: i + 1, values: Array(xb), width: d))
                }
            }
        }
        return x
    }

    /// The adapter on conformer output rows: [T'][hidden].
    @_spi(Tools) public func adapt(_ enc: [Float]) -> [Float] {
        let T = enc.count / config.dModel
        let act = Activations(capacity: 1 << 16)
        return enc.withUnsafeBufferPointer { adapter.forward($0.baseAddress!, T: T, act: act, pool: pool) }
    }

    /// Encodes one clip (any rate; mono) into LFM2 input embeddings.
    public func embed(_ clip: AudioClip, trace: Trace? = nil) throws -> AudioEmbeddings {
        var st = AudioEncodeStats()
        st.audioSeconds = clip.seconds
        var t0 = Date()
        let x = try resample(clip)
        st.resampleSeconds = Date().timeIntervalSince(t0); t0 = Date()
        let m = melFeatures(x)
        st.melFrames = m.first?.count ?? 0
        st.melSeconds = Date().timeIntervalSince(t0); t0 = Date()
        let enc = conformer(mel: m, trace: trace)
        st.encoderSeconds = Date().timeIntervalSince(t0); t0 = Date()
        let e = adapt(enc)
        st.adapterSeconds = Date().timeIntervalSince(t0)
        st.positions = e.count / hidden
        return AudioEmbeddings(values: e, count: st.positions, hidden: hidden, stats: st)
    }
}

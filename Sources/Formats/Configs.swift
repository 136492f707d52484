import Foundation

// Configs of every component, as Codable structs with explicit snake_case keys. Defaults are the
// reference's (liquid-audio 1.3.0 / transformers 5.24 `Lfm2Config` / moshi `get_mimi`): a key that is
// absent takes the value the reference would use. Widths that the reference derives (FFN width, head
// dims, SEANet channels) are computed here, in one place.

/// The LFM2 language-model config (`lfm` block of config.json; also the detokenizer's config.json).
/// Accepts the key-spelling variants released configs use (liquid_audio/model/lfm2_audio.py, `LFM2AudioConfig` and
/// `LFM2_HFConfig`; docs/format.md).
public struct LFM2Config: Codable, Sendable, Equatable {
    public var vocabSize: Int = 65536
    public var hiddenSize: Int = 2560
    public var intermediateSize: Int = 12288
    public var numHiddenLayers: Int = 32
    public var numAttentionHeads: Int = 32
    public var numKeyValueHeads: Int = 8
    public var maxPositionEmbeddings: Int = 128_000
    public var normEps: Double = 1e-5
    public var convBias: Bool = false
    public var convLCache: Int = 3
    public var blockMultipleOf: Int = 256
    public var blockFFNDimMultiplier: Double? = 1.0
    public var blockAutoAdjustFFDim: Bool = true
    public var layerTypes: [String] = []
    public var ropeTheta: Double = 1_000_000
    public var tieWordEmbeddings: Bool = true
    public var bosTokenId: Int? = 1
    public var eosTokenId: Int? = 2
    public var padTokenId: Int? = 0
    public var slidingWindow: Int? = nil

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case blockFFDim = "block_ff_dim"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", maxPositionEmbeddings = "max_position_embeddings"
        case normEps = "norm_eps", convBias = "conv_bias", convLCache = "conv_L_cache"
        case blockMultipleOf = "block_multiple_of", blockFFNDimMultiplier = "block_ffn_dim_multiplier"
        case blockAutoAdjustFFDim = "block_auto_adjust_ff_dim", layerTypes = "layer_types"
        case fullAttnIdxs = "full_attn_idxs", ropeTheta = "rope_theta", theta = "theta"
        case ropeParameters = "rope_parameters", tieWordEmbeddings = "tie_word_embeddings"
        case tieEmbedding = "tie_embedding", bosTokenId = "bos_token_id", eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id", slidingWindow = "sliding_window"
    }
    struct RopeParameters: Codable {
        var ropeTheta: Double?; enum CodingKeys: String, CodingKey { case ropeTheta = "rope_theta" }
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? hiddenSize
        // transformers prefers `block_ff_dim` over `intermediate_size` (Lfm2Config.__post_init__)
        intermediateSize =
            try c.decodeIfPresent(Int.self, forKey: .blockFFDim)
            ?? c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? numAttentionHeads
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numKeyValueHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? maxPositionEmbeddings
        normEps = try c.decodeIfPresent(Double.self, forKey: .normEps) ?? normEps
        convBias = try c.decodeIfPresent(Bool.self, forKey: .convBias) ?? convBias
        convLCache = try c.decodeIfPresent(Int.self, forKey: .convLCache) ?? convLCache
        blockMultipleOf = try c.decodeIfPresent(Int.self, forKey: .blockMultipleOf) ?? blockMultipleOf
        if c.contains(.blockFFNDimMultiplier) {
            blockFFNDimMultiplier =
                try c.decodeNil(forKey: .blockFFNDimMultiplier)
                ? nil : c.decode(Double.self, forKey: .blockFFNDimMultiplier)
        }
        blockAutoAdjustFFDim = try c.decodeIfPresent(Bool.self, forKey: .blockAutoAdjustFFDim) ?? blockAutoAdjustFFDim
        if let types = try c.decodeIfPresent([String].self, forKey: .layerTypes) {
            layerTypes = types
        } else {
            let idxs = try c.decodeIfPresent([Int].self, forKey: .fullAttnIdxs) ?? Array(0..<numHiddenLayers)
            layerTypes = (0..<numHiddenLayers).map { idxs.contains($0) ? "full_attention" : "conv" }
        }
        if let rp = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters), let t = rp.ropeTheta {
            ropeTheta = t
        } else if let t = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) {
            ropeTheta = t
        } else if let t = try c.decodeIfPresent(Double.self, forKey: .theta) {
            ropeTheta = t
        }
        tieWordEmbeddings =
            try c.decodeIfPresent(Bool.self, forKey: .tieEmbedding)
            ?? c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? tieWordEmbeddings
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId) ?? bosTokenId
        // eos may be a list in some files; keep the first id
        if let e = try? c.decodeIfPresent(Int.self, forKey: .eosTokenId) {
            eosTokenId = e
        } else if let l = try? c.decodeIfPresent([Int].self, forKey: .eosTokenId) {
            eosTokenId = l.first
        }
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? padTokenId
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabSize, forKey: .vocabSize); try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize);
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads);
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings); try c.encode(normEps, forKey: .normEps)
        try c.encode(convBias, forKey: .convBias); try c.encode(convLCache, forKey: .convLCache)
        try c.encode(blockMultipleOf, forKey: .blockMultipleOf);
        try c.encode(blockFFNDimMultiplier, forKey: .blockFFNDimMultiplier)
        try c.encode(blockAutoAdjustFFDim, forKey: .blockAutoAdjustFFDim); try c.encode(layerTypes, forKey: .layerTypes)
        try c.encode(ropeTheta, forKey: .ropeTheta); try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId); try c.encodeIfPresent(eosTokenId, forKey: .eosTokenId)
        try c.encodeIfPresent(padTokenId, forKey: .padTokenId);
        try c.encodeIfPresent(slidingWindow, forKey: .slidingWindow)
    }

    /// SwiGLU width as `Lfm2MLP` computes it.
    public var ffnWidth: Int {
        var f = intermediateSize
        if blockAutoAdjustFFDim {
            f = Int(2.0 * Double(f) / 3.0)
            if let m = blockFFNDimMultiplier {
                f = Int(m * Double(f))
                f = blockMultipleOf * ((f + blockMultipleOf - 1) / blockMultipleOf)
            }
        }
        return f
    }
    public var headDim: Int { hiddenSize / max(numAttentionHeads, 1) }
    /// Attention layers; "sliding_attention" (detokenizer) counts as attention.
    public func isAttention(_ layer: Int) -> Bool { layerTypes[layer] != "conv" }

    public func validate(file: String, key: String) throws {
        func bad(_ k: String, _ d: String) -> FormatsError { .badConfig(file: file, key: "\(key).\(k)", detail: d) }
        for (k, v) in [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", numHiddenLayers),
            ("num_attention_heads", numAttentionHeads), ("num_key_value_heads", numKeyValueHeads),
            ("conv_L_cache", convLCache), ("block_multiple_of", blockMultipleOf),
        ] where v <= 0 || v > 1 << 24 {
            throw bad(k, "value \(v) is out of range")
        }
        guard layerTypes.count == numHiddenLayers else {
            throw bad("layer_types", "has \(layerTypes.count) entries for \(numHiddenLayers) layers")
        }
        for t in layerTypes where !["conv", "full_attention", "sliding_attention"].contains(t) {
            throw bad("layer_types", "unknown layer type '\(t)'")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw bad("num_attention_heads", "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw bad(
                "num_key_value_heads", "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        guard ffnWidth > 0 else { throw bad("intermediate_size", "gives an FFN width of \(ffnWidth)") }
    }
}

/// `preprocessor` block (NeMo featurizer settings).
public struct PreprocessorConfig: Codable, Sendable, Equatable {
    public var sampleRate: Int = 16000
    public var normalize: String = "per_feature"
    public var windowSize: Double = 0.025
    public var windowStride: Double = 0.01
    public var window: String = "hann"
    public var features: Int = 128
    public var nFFT: Int = 512
    public var log: Bool = true
    public var frameSplicing: Int = 1
    public var dither: Double = 1e-5
    public var padTo: Int = 0
    public var padValue: Double = 0
    enum CodingKeys: String, CodingKey {
        case sampleRate = "sample_rate", normalize, windowSize = "window_size", windowStride = "window_stride"
        case window, features, nFFT = "n_fft", log, frameSplicing = "frame_splicing", dither, padTo = "pad_to",
            padValue = "pad_value"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sampleRate = try c.decodeIfPresent(Int.self, forKey: .sampleRate) ?? sampleRate
        normalize = try c.decodeIfPresent(String.self, forKey: .normalize) ?? normalize
        windowSize = try c.decodeIfPresent(Double.self, forKey: .windowSize) ?? windowSize
        windowStride = try c.decodeIfPresent(Double.self, forKey: .windowStride) ?? windowStride
        window = try c.decodeIfPresent(String.self, forKey: .window) ?? window
        features = try c.decodeIfPresent(Int.self, forKey: .features) ?? features
        nFFT = try c.decodeIfPresent(Int.self, forKey: .nFFT) ?? nFFT
        log = try c.decodeIfPresent(Bool.self, forKey: .log) ?? log
        frameSplicing = try c.decodeIfPresent(Int.self, forKey: .frameSplicing) ?? frameSplicing
        dither = try c.decodeIfPresent(Double.self, forKey: .dither) ?? dither
        padTo = try c.decodeIfPresent(Int.self, forKey: .padTo) ?? padTo
        padValue = try c.decodeIfPresent(Double.self, forKey: .padValue) ?? padValue
    }
}

/// `encoder` block: NeMo FastConformer settings.
public struct ConformerConfig: Codable, Sendable, Equatable {
    public var featIn: Int = 128
    public var featOut: Int = -1
    public var nLayers: Int = 17
    public var dModel: Int = 512
    public var subsampling: String = "dw_striding"
    public var subsamplingFactor: Int = 8
    public var subsamplingConvChannels: Int = 256
    public var causalDownsampling: Bool = false
    public var ffExpansionFactor: Int = 4
    public var selfAttentionModel: String = "rel_pos"
    public var nHeads: Int = 8
    public var xscaling: Bool = false
    public var untieBiases: Bool = true
    public var posEmbMaxLen: Int = 5000
    public var convKernelSize: Int = 9
    public var convNormType: String = "batch_norm"
    enum CodingKeys: String, CodingKey {
        case featIn = "feat_in", featOut = "feat_out", nLayers = "n_layers", dModel = "d_model", subsampling
        case subsamplingFactor = "subsampling_factor", subsamplingConvChannels = "subsampling_conv_channels"
        case causalDownsampling = "causal_downsampling", ffExpansionFactor = "ff_expansion_factor"
        case selfAttentionModel = "self_attention_model", nHeads = "n_heads", xscaling, untieBiases = "untie_biases"
        case posEmbMaxLen = "pos_emb_max_len", convKernelSize = "conv_kernel_size", convNormType = "conv_norm_type"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        featIn = try c.decodeIfPresent(Int.self, forKey: .featIn) ?? featIn
        featOut = try c.decodeIfPresent(Int.self, forKey: .featOut) ?? featOut
        nLayers = try c.decodeIfPresent(Int.self, forKey: .nLayers) ?? nLayers
        dModel = try c.decodeIfPresent(Int.self, forKey: .dModel) ?? dModel
        subsampling = try c.decodeIfPresent(String.self, forKey: .subsampling) ?? subsampling
        subsamplingFactor = try c.decodeIfPresent(Int.self, forKey: .subsamplingFactor) ?? subsamplingFactor
        subsamplingConvChannels =
            try c.decodeIfPresent(Int.self, forKey: .subsamplingConvChannels) ?? subsamplingConvChannels
        causalDownsampling = try c.decodeIfPresent(Bool.self, forKey: .causalDownsampling) ?? causalDownsampling
        ffExpansionFactor = try c.decodeIfPresent(Int.self, forKey: .ffExpansionFactor) ?? ffExpansionFactor
        selfAttentionModel = try c.decodeIfPresent(String.self, forKey: .selfAttentionModel) ?? selfAttentionModel
        nHeads = try c.decodeIfPresent(Int.self, forKey: .nHeads) ?? nHeads
        xscaling = try c.decodeIfPresent(Bool.self, forKey: .xscaling) ?? xscaling
        untieBiases = try c.decodeIfPresent(Bool.self, forKey: .untieBiases) ?? untieBiases
        posEmbMaxLen = try c.decodeIfPresent(Int.self, forKey: .posEmbMaxLen) ?? posEmbMaxLen
        convKernelSize = try c.decodeIfPresent(Int.self, forKey: .convKernelSize) ?? convKernelSize
        convNormType = try c.decodeIfPresent(String.self, forKey: .convNormType) ?? convNormType
    }
    /// Number of stride-2 stages of dw_striding subsampling.
    public var subsamplingStages: Int { subsamplingFactor.trailingZeroBitCount }
    /// Frequency bins left after subsampling: each stage is conv(k=3, s=2, p=1).
    public var subsampledFeatures: Int {
        var f = featIn
        for _ in 0..<subsamplingStages { f = (f + 2 - 3) / 2 + 1 }
        return f
    }
    public var ffWidth: Int { dModel * ffExpansionFactor }
    public var headDim: Int { dModel / max(nHeads, 1) }

    public func validate(file: String) throws {
        func bad(_ k: String, _ d: String) -> FormatsError { .badConfig(file: file, key: "encoder.\(k)", detail: d) }
        guard subsampling == "dw_striding" else {
            throw bad("subsampling", "'\(subsampling)' is not supported (dw_striding only)")
        }
        guard subsamplingFactor >= 2, subsamplingFactor.nonzeroBitCount == 1, subsamplingFactor <= 64 else {
            throw bad("subsampling_factor", "\(subsamplingFactor) is not a power of two")
        }
        guard selfAttentionModel == "rel_pos" else {
            throw bad("self_attention_model", "'\(selfAttentionModel)' is not supported (rel_pos only)")
        }
        guard convNormType == "batch_norm" else {
            throw bad("conv_norm_type", "'\(convNormType)' is not supported (batch_norm only)")
        }
        guard !xscaling else { throw bad("xscaling", "true is not supported by the reference") }
        guard featOut == -1 else { throw bad("feat_out", "\(featOut): an output projection is not supported") }
        for (k, v) in [
            ("feat_in", featIn), ("n_layers", nLayers), ("d_model", dModel), ("n_heads", nHeads),
            ("subsampling_conv_channels", subsamplingConvChannels), ("ff_expansion_factor", ffExpansionFactor),
            ("conv_kernel_size", convKernelSize),
        ] where v <= 0 || v > 1 << 20 {
            throw bad(k, "value \(v) is out of range")
        }
        guard dModel % nHeads == 0 else { throw bad("n_heads", "\(nHeads) does not divide d_model \(dModel)") }
        guard convKernelSize % 2 == 1 else { throw bad("conv_kernel_size", "\(convKernelSize) must be odd") }
    }
}

/// `depthformer` block. The reference's MHA defaults fix the heads: 32 query heads, 8 KV heads.
public struct DepthformerConfig: Codable, Sendable, Equatable {
    public var layers: Int = 6
    public var dim: Int = 1024
    public var tie: Bool = true
    public static let numHeads = 32
    public static let numKVHeads = 8
    public init() {}
    public var headDim: Int { dim / Self.numHeads }
    public var qkvWidth: Int { dim + 2 * headDim * Self.numKVHeads }
    /// `GLU(dim, ff_dim=4·dim)` with SwiGLU: int(2·4d/3) rounded up to a multiple of 256.
    public var ffnWidth: Int { let f = Int(2.0 * Double(4 * dim) / 3.0); return 256 * ((f + 255) / 256) }
}

/// The top-level config.json of an LFM2-Audio checkpoint.
public struct LFM2AudioConfig: Codable, Sendable, Equatable {
    public var architectures: [String] = ["Lfm2AudioForConditionalGeneration"]
    public var codebooks: Int = 8
    public var tieAudioEmbeddings: Bool = false
    public var semanticCodebookFactor: Double = 100
    public var codebookWeight: String = "log"
    public var interleavedNText: Int = 6
    public var interleavedNAudio: Int = 12
    public var preprocessor = PreprocessorConfig()
    public var encoder = ConformerConfig()
    public var lfm = LFM2Config()
    public var depthformer = DepthformerConfig()
    /// Audio vocabulary per codebook: 2048 codes + end-of-audio.
    public static let audioVocab = 2049

    enum CodingKeys: String, CodingKey {
        case architectures, codebooks, tieAudioEmbeddings = "tie_audio_embeddings"
        case semanticCodebookFactor = "semantic_codebook_factor", codebookWeight = "codebook_weight"
        case interleavedNText = "interleaved_n_text", interleavedNAudio = "interleaved_n_audio"
        case preprocessor, encoder, lfm, depthformer
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures) ?? architectures
        codebooks = try c.decode(Int.self, forKey: .codebooks)
        tieAudioEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieAudioEmbeddings) ?? tieAudioEmbeddings
        semanticCodebookFactor =
            try c.decodeIfPresent(Double.self, forKey: .semanticCodebookFactor) ?? semanticCodebookFactor
        codebookWeight = try c.decodeIfPresent(String.self, forKey: .codebookWeight) ?? codebookWeight
        interleavedNText = try c.decodeIfPresent(Int.self, forKey: .interleavedNText) ?? interleavedNText
        interleavedNAudio = try c.decodeIfPresent(Int.self, forKey: .interleavedNAudio) ?? interleavedNAudio
        preprocessor = try c.decodeIfPresent(PreprocessorConfig.self, forKey: .preprocessor) ?? preprocessor
        encoder = try c.decode(ConformerConfig.self, forKey: .encoder)
        lfm = try c.decode(LFM2Config.self, forKey: .lfm)
        depthformer = try c.decode(DepthformerConfig.self, forKey: .depthformer)
    }

    public func validate(file: String) throws {
        guard (1...32).contains(codebooks) else {
            throw FormatsError.badConfig(file: file, key: "codebooks", detail: "\(codebooks) is out of range 1…32")
        }
        guard interleavedNText > 0, interleavedNAudio > 0 else {
            throw FormatsError.badConfig(
                file: file, key: "interleaved_n_text", detail: "interleave counts must be positive")
        }
        try lfm.validate(file: file, key: "lfm")
        try encoder.validate(file: file)
        guard depthformer.layers > 0, depthformer.layers < 1024, depthformer.dim > 0,
            depthformer.dim % DepthformerConfig.numHeads == 0
        else {
            throw FormatsError.badConfig(
                file: file, key: "depthformer",
                detail: "layers \(depthformer.layers), dim \(depthformer.dim): dim must be a positive multiple of 32")
        }
        guard preprocessor.features == encoder.featIn else {
            throw FormatsError.badConfig(
                file: file, key: "preprocessor.features",
                detail: "\(preprocessor.features) differs from encoder.feat_in \(encoder.featIn)")
        }
    }
}

/// Mimi hyper-parameters: the reference's `get_mimi` module-level kwargs, unless a `mimi_config.json`
/// beside the Mimi file gives the three dicts under `seanet`, `quantizer` and `transformer`.
public struct MimiConfig: Codable, Sendable, Equatable {
    public struct SEANet: Codable, Sendable, Equatable {
        public var channels = 1, dimension = 512, nFilters = 64, nResidualLayers = 1
        public var ratios = [8, 6, 5, 4]
        public var kernelSize = 7, residualKernelSize = 3, lastKernelSize = 3, dilationBase = 2, compress = 2
        public var causal = true, trueSkip = true
        public var activation = "ELU", norm = "none", padMode = "constant"
        public var disableNormOuterBlocks = 0
        enum CodingKeys: String, CodingKey {
            case channels, dimension, nFilters = "n_filters", nResidualLayers = "n_residual_layers", ratios
            case kernelSize = "kernel_size", residualKernelSize = "residual_kernel_size", lastKernelSize =
                "last_kernel_size"
            case dilationBase = "dilation_base", compress, causal, trueSkip = "true_skip", activation, norm
            case padMode = "pad_mode", disableNormOuterBlocks = "disable_norm_outer_blocks"
        }
    }
    public struct Quantizer: Codable, Sendable, Equatable {
        public var dimension = 256, nQ = 32, bins = 2048, inputDimension = 512, outputDimension = 512
        enum CodingKeys: String, CodingKey {
            case dimension, nQ = "n_q", bins, inputDimension = "input_dimension", outputDimension = "output_dimension"
        }
    }
    public struct Transformer: Codable, Sendable, Equatable {
        public var dModel = 512, numHeads = 8, numLayers = 8, context = 250, maxPeriod = 10000, dimFeedforward = 2048
        public var causal = true, convLayout = true
        public var layerScale: Double? = 0.01
        public var gating = "none", norm = "layer_norm", positionalEmbedding = "rope"
        public var inputDimension = 512
        public var outputDimensions = [512]
        enum CodingKeys: String, CodingKey {
            case dModel = "d_model", numHeads = "num_heads", numLayers = "num_layers", context, maxPeriod = "max_period"
            case dimFeedforward = "dim_feedforward", causal, convLayout = "conv_layout", layerScale = "layer_scale"
            case gating, norm, positionalEmbedding = "positional_embedding", inputDimension = "input_dimension"
            case outputDimensions = "output_dimensions"
        }
    }
    public var seanet = SEANet()
    public var quantizer = Quantizer()
    public var transformer = Transformer()
    public static let sampleRate = 24000
    public static let frameRate = 12.5
    public init() {}

    public func validate(file: String) throws {
        func bad(_ k: String, _ d: String) -> FormatsError { .badConfig(file: file, key: k, detail: d) }
        guard !seanet.ratios.isEmpty, seanet.ratios.allSatisfy({ $0 > 0 && $0 < 64 }) else {
            throw bad("seanet.ratios", "\(seanet.ratios) is invalid")
        }
        guard seanet.activation == "ELU" else {
            throw bad("seanet.activation", "'\(seanet.activation)' is not supported")
        }
        guard seanet.norm == "none" else {
            throw bad("seanet.norm", "'\(seanet.norm)' is not supported (weights must be folded)")
        }
        guard transformer.gating == "none", transformer.norm == "layer_norm", transformer.positionalEmbedding == "rope"
        else {
            throw bad("transformer", "only gating 'none', norm 'layer_norm' and rope positions are supported")
        }
        guard transformer.dModel % transformer.numHeads == 0 else {
            throw bad("transformer.num_heads", "does not divide d_model")
        }
        guard transformer.inputDimension == seanet.dimension else {
            throw bad(
                "transformer.input_dimension",
                """
                \(transformer.inputDimension) differs from seanet.dimension \(seanet.dimension) (projections are \
                not supported)
                """
            )
        }
        for (k, v) in [
            ("seanet.dimension", seanet.dimension), ("seanet.n_filters", seanet.nFilters),
            ("quantizer.dimension", quantizer.dimension),
            ("quantizer.n_q", quantizer.nQ), ("quantizer.bins", quantizer.bins),
            ("transformer.num_layers", transformer.numLayers),
            ("transformer.dim_feedforward", transformer.dimFeedforward), ("seanet.compress", seanet.compress),
        ] where v <= 0 || v > 1 << 20 {
            throw bad(k, "value \(v) is out of range")
        }
    }
}

/// The detokenizer's `audio_detokenizer/config.json`: an LFM2 config; the head is fixed by the reference.
public struct DetokenizerConfig: Sendable, Equatable {
    public var lfm: LFM2Config
    /// Attention window in tokens (`sliding_window`, reference default 30).
    public var slidingWindow: Int { lfm.slidingWindow ?? 30 }
    /// Hard-coded in `LFM2AudioDetokenizer`.
    public static let width = 512, codebooks = 8, codebookSize = 2048, outputSize = 1282, nFFT = 1280, hop = 320
    public init(lfm: LFM2Config) { self.lfm = lfm }
}

/// Decodes a config from JSON bytes with the strict parser, turning decoding errors into messages that
/// name the file and the key path.
public func decodeConfig<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
    _ = try JSONValue.parse(data: data, file: file, what: "config")
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let e as DecodingError {
        func path(_ ctx: DecodingError.Context, _ extra: CodingKey? = nil) -> String {
            let keys = ctx.codingPath + (extra.map { [$0] } ?? [])
            return keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let k, let ctx):
            throw FormatsError.badConfig(file: file, key: path(ctx, k), detail: "missing")
        case .typeMismatch(let t, let ctx):
            throw FormatsError.badConfig(file: file, key: path(ctx), detail: "wrong type (expected \(t))")
        case .valueNotFound(let t, let ctx):
            throw FormatsError.badConfig(file: file, key: path(ctx), detail: "is null (expected \(t))")
        case .dataCorrupted(let ctx):
            throw FormatsError.badConfig(file: file, key: path(ctx), detail: ctx.debugDescription)
        @unknown default: throw FormatsError.badJSON(file: file, detail: "\(e)")
        }
    }
}

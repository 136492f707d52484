import Foundation

/// What a tensor is, which decides its stored type under a quantization preset.
public enum TensorRole: String, Sendable, Codable {
    /// A lookup table whose rows are read by index (token / code embeddings).
    case embedding
    /// A 2-D linear weight (or a K=1 convolution, which is one).
    case matrix
    /// A convolution kernel with a spatial extent (kept float; rows are short).
    case convKernel = "conv_kernel"
    /// Norm weights, biases, scales, codebook tables and other vectors (kept F32).
    case vector
    /// A buffer inference never reads.
    case buffer
}

/// The bundle's components; tensor names are grouped by them in reports.
public enum Component: String, Sendable, Codable, CaseIterable {
    case backbone, conformer, adapter, depthformer, audioEmbedding = "audio_embedding", mimi, detokenizer
}

/// Names the bundle uses beyond the checkpoint's own: component prefixes and derived tensors (docs/format.md §4).
/// The converter writes them, the runtime and the verifier read them, from here only.
public enum BundleNames {
    public static let backbonePrefix = "lfm."
    public static let mimiPrefix = "mimi."
    public static let detokenizerPrefix = "detokenizer."
    /// The conformer's depthwise conv with its batch norm folded in (§4.1), per layer; `.weight` / `.bias`.
    public static func foldedDepthwise(_ layer: Int) -> String {
        "conformer.layers.\(layer).conv.depthwise_conv_bn_folded"
    }
    /// The prefix of Mimi codebook k's tensors (k = 0 is `rvq_first`, then `rvq_rest` layers), without `mimi.`.
    public static func mimiCodebook(_ k: Int) -> String {
        k == 0 ? "quantizer.rvq_first.vq.layers.0._codebook." : "quantizer.rvq_rest.vq.layers.\(k - 1)._codebook."
    }
    /// Codebook k's precomputed centroids (§4.2), with the `mimi.` prefix.
    public static func mimiCentroids(_ k: Int) -> String { mimiPrefix + mimiCodebook(k) + "centroids" }
    /// The tensor-name prefixes of a component's tensors in a bundle.
    public static func prefixes(_ c: Component) -> [String] {
        switch c {
        case .backbone: return [backbonePrefix]
        case .conformer: return ["conformer."]
        case .adapter: return ["audio_adapter."]
        case .depthformer: return ["depthformer.", "depth_linear.", "depth_embeddings."]
        case .audioEmbedding: return ["audio_embedding."]
        case .mimi: return [mimiPrefix]
        case .detokenizer: return [detokenizerPrefix]
        }
    }
}

/// One tensor a checkpoint must contain, with the shape derived from the config (PyTorch order).
public struct ExpectedTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var role: TensorRole
    public var component: Component
    /// Why inference never reads it (nil: it is kept). Dropped tensors are listed in the report.
    public var dropReason: String?
    /// Alternative spellings accepted for this tensor (Mimi attention projections).
    public var aliases: [String] = []
    public init(
        _ name: String, _ shape: [Int], _ role: TensorRole, _ component: Component, drop: String? = nil,
        aliases: [String] = []
    ) {
        self.name = name; self.shape = shape; self.role = role; self.component = component; self.dropReason = drop;
        self.aliases = aliases
    }
}

/// Two checkpoint tensors that the reference's modules tie to one Parameter: `stored` is the member the bundle keeps,
/// `derived` is read through the bundle's tie table (docs/format.md §Tied tensors). A checkpoint may hold both
/// (equal: stored once), only `stored`, or only `derived` (trainers that save with accelerate keep the first name
/// of a shared storage and remove the rest, so it is normally `stored`).
public struct TensorTie: Sendable, Equatable, Codable {
    public var stored: String
    public var derived: String
    /// The config key that declares the tie, for reports.
    public var key: String
    public init(stored: String, derived: String, key: String) {
        self.stored = stored; self.derived = derived; self.key = key
    }
}

/// Checkpoint tensor names and shapes, in one place per component. The runtime reads the same names.
public enum Schema {
    // MARK: Ties

    /// Every tie of an LFM2-Audio `model.safetensors`, as the reference declares them:
    /// - `depthformer.tie`: `SharedEmbedding.__init__` (liquid_audio/model/transformer.py) sets
    ///   `to_logits.weight = embedding.weight` for each `depth_embeddings.{k}` (`LFM2AudioModel.__init__`,
    ///   liquid_audio/model/lfm2_audio.py, passes `tie_embedding=conf.depthformer.tie`).
    /// - `tie_audio_embeddings`: the same `SharedEmbedding` tie for `audio_embedding`.
    /// - `lfm.tie_word_embeddings` declares no pair: the backbone is transformers' `Lfm2Model`, which has no
    ///   `lm_head`; the reference computes text logits from `lfm.embed_tokens.weight` (`generate_sequential`), and so
    ///   does the runtime. The detokenizer's `Lfm2Model` likewise has none, and Mimi (moshi) ties nothing.
    public static func ties(_ c: LFM2AudioConfig) -> [TensorTie] {
        var t: [TensorTie] = []
        if c.depthformer.tie {
            for k in 0..<c.codebooks {
                t.append(
                    .init(
                        stored: "depth_embeddings.\(k).embedding.weight",
                        derived: "depth_embeddings.\(k).to_logits.weight", key: "depthformer.tie"))
            }
        }
        if c.tieAudioEmbeddings {
            t.append(
                .init(
                    stored: "audio_embedding.embedding.weight", derived: "audio_embedding.to_logits.weight",
                    key: "tie_audio_embeddings"))
        }
        return t
    }

    // MARK: LFM2 (backbone `lfm.`, and the detokenizer's `lfm.`)

    public static func lfm2(
        _ c: LFM2Config, prefix: String, component: Component, dropEmbedding: String? = nil
    ) -> [ExpectedTensor] {
        let h = c.hiddenSize, f = c.ffnWidth, d = c.headDim
        var t: [ExpectedTensor] = [
            .init("\(prefix)embed_tokens.weight", [c.vocabSize, h], .embedding, component, drop: dropEmbedding),
            .init("\(prefix)embedding_norm.weight", [h], .vector, component),
        ]
        for i in 0..<c.numHiddenLayers {
            let p = "\(prefix)layers.\(i)."
            t += [
                .init(p + "operator_norm.weight", [h], .vector, component),
                .init(p + "ffn_norm.weight", [h], .vector, component),
                .init(p + "feed_forward.w1.weight", [f, h], .matrix, component),
                .init(p + "feed_forward.w3.weight", [f, h], .matrix, component),
                .init(p + "feed_forward.w2.weight", [h, f], .matrix, component),
            ]
            if c.isAttention(i) {
                t += [
                    .init(p + "self_attn.q_proj.weight", [c.numAttentionHeads * d, h], .matrix, component),
                    .init(p + "self_attn.k_proj.weight", [c.numKeyValueHeads * d, h], .matrix, component),
                    .init(p + "self_attn.v_proj.weight", [c.numKeyValueHeads * d, h], .matrix, component),
                    .init(p + "self_attn.out_proj.weight", [h, c.numAttentionHeads * d], .matrix, component),
                    .init(p + "self_attn.q_layernorm.weight", [d], .vector, component),
                    .init(p + "self_attn.k_layernorm.weight", [d], .vector, component),
                ]
            } else {
                t += [
                    .init(p + "conv.in_proj.weight", [3 * h, h], .matrix, component),
                    .init(p + "conv.conv.weight", [h, 1, c.convLCache], .convKernel, component),
                    .init(p + "conv.out_proj.weight", [h, h], .matrix, component),
                ]
                if c.convBias {
                    t += [
                        .init(p + "conv.in_proj.bias", [3 * h], .vector, component),
                        .init(p + "conv.conv.bias", [h], .vector, component),
                        .init(p + "conv.out_proj.bias", [h], .vector, component),
                    ]
                }
            }
        }
        return t
    }

    // MARK: model.safetensors of LFM2-Audio

    public static func conformer(_ e: ConformerConfig) -> [ExpectedTensor] {
        let ch = e.subsamplingConvChannels, d = e.dModel, ff = e.ffWidth, k = e.convKernelSize
        let p0 = "conformer.pre_encode."
        var t: [ExpectedTensor] = [
            .init(p0 + "conv.0.weight", [ch, 1, 3, 3], .convKernel, .conformer),
            .init(p0 + "conv.0.bias", [ch], .vector, .conformer),
        ]
        for s in 1..<e.subsamplingStages {
            let dw = 2 + 3 * (s - 1), pw = dw + 1
            t += [
                .init(p0 + "conv.\(dw).weight", [ch, 1, 3, 3], .convKernel, .conformer),
                .init(p0 + "conv.\(dw).bias", [ch], .vector, .conformer),
                .init(p0 + "conv.\(pw).weight", [ch, ch, 1, 1], .matrix, .conformer),
                .init(p0 + "conv.\(pw).bias", [ch], .vector, .conformer),
            ]
        }
        t += [
            .init(p0 + "out.weight", [d, ch * e.subsampledFeatures], .matrix, .conformer),
            .init(p0 + "out.bias", [d], .vector, .conformer),
        ]
        for i in 0..<e.nLayers {
            let p = "conformer.layers.\(i)."
            for n in ["norm_feed_forward1", "norm_self_att", "norm_conv", "norm_feed_forward2", "norm_out"] {
                t += [
                    .init(p + n + ".weight", [d], .vector, .conformer),
                    .init(p + n + ".bias", [d], .vector, .conformer),
                ]
            }
            for n in ["feed_forward1", "feed_forward2"] {
                t += [
                    .init(p + n + ".linear1.weight", [ff, d], .matrix, .conformer),
                    .init(p + n + ".linear1.bias", [ff], .vector, .conformer),
                    .init(p + n + ".linear2.weight", [d, ff], .matrix, .conformer),
                    .init(p + n + ".linear2.bias", [d], .vector, .conformer),
                ]
            }
            for n in ["linear_q", "linear_k", "linear_v", "linear_out"] {
                t += [
                    .init(p + "self_attn.\(n).weight", [d, d], .matrix, .conformer),
                    .init(p + "self_attn.\(n).bias", [d], .vector, .conformer),
                ]
            }
            t += [
                .init(p + "self_attn.linear_pos.weight", [d, d], .matrix, .conformer),
                .init(p + "self_attn.pos_bias_u", [e.nHeads, e.headDim], .vector, .conformer),
                .init(p + "self_attn.pos_bias_v", [e.nHeads, e.headDim], .vector, .conformer),
                .init(p + "conv.pointwise_conv1.weight", [2 * d, d, 1], .matrix, .conformer),
                .init(p + "conv.pointwise_conv1.bias", [2 * d], .vector, .conformer),
                .init(
                    p + "conv.depthwise_conv.weight", [d, 1, k], .convKernel, .conformer,
                    drop: "folded with batch_norm into conv.depthwise_conv_bn_folded"),
                .init(
                    p + "conv.depthwise_conv.bias", [d], .vector, .conformer,
                    drop: "folded with batch_norm into conv.depthwise_conv_bn_folded"),
                .init(
                    p + "conv.batch_norm.weight", [d], .vector, .conformer,
                    drop: "folded into conv.depthwise_conv_bn_folded"),
                .init(
                    p + "conv.batch_norm.bias", [d], .vector, .conformer,
                    drop: "folded into conv.depthwise_conv_bn_folded"),
                .init(
                    p + "conv.batch_norm.running_mean", [d], .buffer, .conformer,
                    drop: "folded into conv.depthwise_conv_bn_folded"),
                .init(
                    p + "conv.batch_norm.running_var", [d], .buffer, .conformer,
                    drop: "folded into conv.depthwise_conv_bn_folded"),
                .init(
                    p + "conv.batch_norm.num_batches_tracked", [], .buffer, .conformer, drop: "training-only counter"),
                .init(p + "conv.pointwise_conv2.weight", [d, d, 1], .matrix, .conformer),
                .init(p + "conv.pointwise_conv2.bias", [d], .vector, .conformer),
            ]
        }
        return t
    }

    public static func adapter(inDim: Int, hidden: Int) -> [ExpectedTensor] {
        [
            .init("audio_adapter.model.0.weight", [inDim], .vector, .adapter),
            .init("audio_adapter.model.0.bias", [inDim], .vector, .adapter),
            .init("audio_adapter.model.1.weight", [hidden, inDim], .matrix, .adapter),
            .init("audio_adapter.model.1.bias", [hidden], .vector, .adapter),
            .init("audio_adapter.model.3.weight", [hidden, hidden], .matrix, .adapter),
            .init("audio_adapter.model.3.bias", [hidden], .vector, .adapter),
        ]
    }

    public static func depthformer(_ c: LFM2AudioConfig) -> [ExpectedTensor] {
        let df = c.depthformer, d = df.dim, hd = df.headDim, f = df.ffnWidth, h = c.lfm.hiddenSize, nc = c.codebooks
        let v = LFM2AudioConfig.audioVocab
        var t: [ExpectedTensor] = []
        for i in 0..<df.layers {
            let p = "depthformer.layers.\(i)."
            t += [
                .init(p + "operator_norm.weight", [d], .vector, .depthformer),
                .init(p + "ffn_norm.weight", [d], .vector, .depthformer),
                .init(p + "operator.qkv_proj.weight", [df.qkvWidth, d], .matrix, .depthformer),
                .init(p + "operator.out_proj.weight", [d, d], .matrix, .depthformer),
                .init(p + "operator.bounded_attention.q_layernorm.weight", [hd], .vector, .depthformer),
                .init(p + "operator.bounded_attention.k_layernorm.weight", [hd], .vector, .depthformer),
                .init(p + "feed_forward.w1.weight", [f, d], .matrix, .depthformer),
                .init(p + "feed_forward.w3.weight", [f, d], .matrix, .depthformer),
                .init(p + "feed_forward.w2.weight", [d, f], .matrix, .depthformer),
            ]
        }
        t += [
            .init("depth_linear.weight", [nc * d, h], .matrix, .depthformer),
            .init("depth_linear.bias", [nc * d], .vector, .depthformer),
        ]
        for k in 0..<nc {
            let p = "depth_embeddings.\(k)."
            t += [
                .init(p + "embedding.weight", [v, d], .embedding, .depthformer),
                .init(p + "embedding_norm.weight", [d], .vector, .depthformer),
                .init(p + "to_logits.weight", [v, d], .matrix, .depthformer),
            ]
        }
        t += [
            .init("audio_embedding.embedding.weight", [v * nc, h], .embedding, .audioEmbedding),
            .init(
                "audio_embedding.embedding_norm.weight", [h], .vector, .audioEmbedding,
                drop: "training-only output head of the audio embedding"),
            .init(
                "audio_embedding.to_logits.weight", [v * nc, h], .matrix, .audioEmbedding,
                drop: "training-only output head of the audio embedding"),
            .init("codebook_offsets", [nc], .buffer, .audioEmbedding, drop: "derived constant (2049·k)"),
            .init("audio_loss_weights", [nc], .buffer, .audioEmbedding, drop: "training-only loss weights"),
        ]
        return t
    }

    /// Every tensor of an LFM2-Audio `model.safetensors`.
    public static func model(_ c: LFM2AudioConfig) -> [ExpectedTensor] {
        lfm2(c.lfm, prefix: "lfm.", component: .backbone)
            + conformer(c.encoder)
            + adapter(inDim: c.encoder.dModel, hidden: c.lfm.hiddenSize)
            + depthformer(c)
    }

    // MARK: Mimi (`tokenizer-e351c8d8-checkpoint125.safetensors`), decode half

    /// Decode-path tensors (kept) plus the quantizer codebooks; `usedCodebooks` = config.codebooks.
    public static func mimiDecode(_ m: MimiConfig, usedCodebooks: Int) -> [ExpectedTensor] {
        var t: [ExpectedTensor] = []
        let q = m.quantizer, s = m.seanet, tr = m.transformer
        func codebook(_ p: String) {
            t += [
                .init(
                    p + "embedding_sum", [q.bins, q.dimension], .vector, .mimi,
                    drop: "folded into _codebook.centroids"),
                .init(p + "cluster_usage", [q.bins], .vector, .mimi, drop: "folded into _codebook.centroids"),
                .init(p + "_initialized", [1], .buffer, .mimi, drop: "training-only flag"),
            ]
        }
        for k in 0..<max(usedCodebooks, 1) { codebook(BundleNames.mimiCodebook(k)) }
        t += [
            .init("quantizer.rvq_first.output_proj.weight", [q.outputDimension, q.dimension, 1], .matrix, .mimi),
            .init("quantizer.rvq_rest.output_proj.weight", [q.outputDimension, q.dimension, 1], .matrix, .mimi),
        ]
        let hop = s.ratios.reduce(1, *)
        let stride = max(1, Int((Double(MimiConfig.sampleRate) / Double(hop) / MimiConfig.frameRate).rounded()))
        t.append(.init("upsample.convtr.convtr.convtr.weight", [s.dimension, 1, 2 * stride], .convKernel, .mimi))
        let d = tr.dModel, ff = tr.dimFeedforward
        for i in 0..<tr.numLayers {
            let p = "decoder_transformer.transformer.layers.\(i)."
            t += [
                .init(
                    p + "self_attn.in_proj_weight", [3 * d, d], .matrix, .mimi,
                    aliases: [p + "self_attn.in_projs.0.weight", p + "self_attn.in_proj.weight"]),
                .init(
                    p + "self_attn.out_proj.weight", [d, d], .matrix, .mimi,
                    aliases: [p + "self_attn.out_projs.0.weight"]),
                .init(p + "norm1.weight", [d], .vector, .mimi), .init(p + "norm1.bias", [d], .vector, .mimi),
                .init(p + "norm2.weight", [d], .vector, .mimi), .init(p + "norm2.bias", [d], .vector, .mimi),
                .init(p + "linear1.weight", [ff, d], .matrix, .mimi),
                .init(p + "linear2.weight", [d, ff], .matrix, .mimi),
            ]
            if tr.layerScale != nil {
                t += [
                    .init(p + "layer_scale_1.scale", [d], .vector, .mimi),
                    .init(p + "layer_scale_2.scale", [d], .vector, .mimi),
                ]
            }
        }
        // SEANet decoder: conv, then per ratio (ELU, convtr, residual blocks), then ELU, conv.
        let r = s.nResidualLayers
        var mult = 1 << s.ratios.count
        func conv(_ p: String, _ out: Int, _ inp: Int, _ k: Int) {
            t += [
                .init(p + ".conv.conv.weight", [out, inp, k], k == 1 ? .matrix : .convKernel, .mimi),
                .init(p + ".conv.conv.bias", [out], .vector, .mimi),
            ]
        }
        conv("decoder.model.0", mult * s.nFilters, s.dimension, s.kernelSize)
        var idx = 1
        for ratio in s.ratios {
            let inC = mult * s.nFilters, outC = inC / 2
            idx += 1  // ELU
            t += [
                .init("decoder.model.\(idx).convtr.convtr.weight", [inC, outC, 2 * ratio], .convKernel, .mimi),
                .init("decoder.model.\(idx).convtr.convtr.bias", [outC], .vector, .mimi),
            ]
            idx += 1
            for _ in 0..<r {
                let hidden = outC / s.compress
                conv("decoder.model.\(idx).block.1", hidden, outC, s.residualKernelSize)
                conv("decoder.model.\(idx).block.3", outC, hidden, 1)
                idx += 1
            }
            mult /= 2
        }
        idx += 1  // ELU
        conv("decoder.model.\(idx)", s.channels, s.nFilters, s.lastKernelSize)
        return t
    }

    /// Mimi tensors inference never reads: the encoder half and codebooks past the ones used.
    public static func mimiDropReason(_ name: String, usedCodebooks: Int) -> String? {
        if name.hasPrefix("encoder.") || name.hasPrefix("encoder_transformer.") || name.hasPrefix("downsample.") {
            return "Mimi encoder half (decode only)"
        }
        if name.hasPrefix("quantizer."), name.contains(".input_proj.") { return "Mimi encoder-side projection" }
        let restPrefix = "quantizer.rvq_rest.vq.layers."
        if name.hasPrefix(restPrefix), let k = Int(name.dropFirst(restPrefix.count).prefix { $0.isNumber }),
            k >= usedCodebooks - 1
        {
            return "Mimi codebooks past the \(usedCodebooks) used"
        }
        return nil
    }

    // MARK: LFM2 audio detokenizer (`audio_detokenizer/model.safetensors`)

    public static func detokenizer(_ c: DetokenizerConfig) -> [ExpectedTensor] {
        let w = DetokenizerConfig.width
        var t = lfm2(
            c.lfm, prefix: "lfm.", component: .detokenizer, dropEmbedding: "unused: codes enter through emb.emb")
        t += [
            .init(
                "emb.emb.weight", [DetokenizerConfig.codebooks * DetokenizerConfig.codebookSize, w], .embedding,
                .detokenizer),
            .init("lin.weight", [DetokenizerConfig.outputSize, w], .matrix, .detokenizer),
            .init("lin.bias", [DetokenizerConfig.outputSize], .vector, .detokenizer),
            .init("istft.window", [DetokenizerConfig.nFFT], .vector, .detokenizer),
        ]
        return t
    }
}

import Foundation
import Formats

/// Exports the LFM2 backbone of a checkpoint as a llama.cpp `lfm2` GGUF (names and keys of llama.cpp's
/// own converter, convert_hf_to_gguf.py `LFM2Model`), so llama.cpp tools run the same weights side by side with ours.
public enum LlamaExport {
    /// Checkpoint name (after `lfm.`) → llama.cpp tensor name.
    public static func llamaName(_ name: String) -> String? {
        guard name.hasPrefix("lfm.") else { return nil }
        let n = String(name.dropFirst(4))
        switch n {
        case "embed_tokens.weight": return "token_embd.weight"
        case "embedding_norm.weight": return "token_embd_norm.weight"
        default: break
        }
        let parts = n.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "layers", let i = Int(parts[1]) else { return nil }
        let map = [
            "operator_norm.weight": "attn_norm.weight", "ffn_norm.weight": "ffn_norm.weight",
            "feed_forward.w1.weight": "ffn_gate.weight", "feed_forward.w3.weight": "ffn_up.weight",
            "feed_forward.w2.weight": "ffn_down.weight",
            "conv.in_proj.weight": "shortconv.in_proj.weight", "conv.conv.weight": "shortconv.conv.weight",
            "conv.out_proj.weight": "shortconv.out_proj.weight",
            "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight", "self_attn.out_proj.weight": "attn_output.weight",
            "self_attn.q_layernorm.weight": "attn_q_norm.weight", "self_attn.k_layernorm.weight": "attn_k_norm.weight",
        ]
        return map[parts[2]].map { "blk.\(i).\($0)" }
    }

    public static func plan(_ ckpt: Checkpoint, preset: Preset) throws -> [PlannedTensor] {
        let c = ckpt.config.lfm
        guard !c.convBias else {
            throw QuantizeError.source(
                file: ckpt.root, tensor: "lfm", detail: "conv_bias is not supported by llama.cpp's lfm2")
        }
        var recipe = Recipe(preset: preset)
        recipe.backboneLayers = c.layerTypes
        let expected = Schema.lfm2(c, prefix: "lfm.", component: .backbone)
        var out: [PlannedTensor] = []
        for e in expected {
            guard let t = ckpt.model[e.name], let name = llamaName(e.name) else {
                throw QuantizeError.source(file: ckpt.root, tensor: e.name, detail: "missing or has no llama.cpp name")
            }
            guard t.shape == e.shape else {
                throw QuantizeError.source(
                    file: t.file.path, tensor: e.name, detail: "shape \(t.shape), config implies \(e.shape)")
            }
            var shape = t.shape
            if e.name.hasSuffix("conv.conv.weight") { shape = [shape[0], shape[2]] }  // llama.cpp squeezes to 2-D
            // llama.cpp keeps norms and the short-conv kernel in F32
            var (type, why) =
                e.role == .convKernel
                ? (GGMLType.f32, "conv kernel F32")
                : recipe.type(name: e.name, shape: shape, role: e.role, component: .backbone, sourceIsFloat: true)
            if preset == .q4_0, e.role == .embedding { (type, why) = (.q8_0, "tied embedding Q8_0") }
            out.append(
                PlannedTensor(
                    name: name, shape: shape, role: e.role, component: .backbone, type: type, reason: why,
                    source: .stored(t)))
        }
        return out
    }

    /// llama.cpp's token types.
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5 }

    public static func metadata(_ ckpt: Checkpoint, preset: Preset) throws -> [(String, GGUFValue)] {
        let c = ckpt.config.lfm
        let tokPath = ckpt.root + "/" + CheckpointFiles.tokenizer
        let tok = try JSONValue.parse(data: ckpt.tokenizerData, file: tokPath, what: "tokenizer.json")
        guard let vocab = tok["model"]?["vocab"]?.objectValue else {
            throw FormatsError.badConfig(
                file: tokPath, key: "model.vocab", detail: "missing (a BPE tokenizer is required)")
        }
        var tokens = (0..<c.vocabSize).map { "[PAD\($0)]" }
        var types = Array(repeating: TokenType.unused.rawValue, count: c.vocabSize)
        for (t, v) in vocab {
            if let i = v.intValue, i >= 0, i < c.vocabSize { tokens[i] = t; types[i] = TokenType.normal.rawValue }
        }
        for a in tok["added_tokens"]?.arrayValue ?? [] {
            guard let i = a["id"]?.intValue, i >= 0, i < c.vocabSize, let s = a["content"]?.stringValue else {
                continue
            }
            tokens[i] = s
            types[i] = (a["special"]?.boolValue ?? false) ? TokenType.control.rawValue : TokenType.userDefined.rawValue
        }
        var merges: [String] = []
        for m in tok["model"]?["merges"]?.arrayValue ?? [] {
            if let s = m.stringValue {
                merges.append(s)
            } else if let p = m.arrayValue, p.count == 2, let a = p[0].stringValue, let b = p[1].stringValue {
                merges.append(a + " " + b)
            }
        }
        let ftype = preset.llamaFileType
        var m: [(String, GGUFValue)] = [
            ("general.architecture", .string("lfm2")),
            ("general.name", .string(Converter.checkpointName(ckpt.root) + " (backbone)")),
            ("general.file_type", .uint32(ftype)),
            ("general.quantization_version", .uint32(2)),
            ("lfm2.context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("lfm2.embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("lfm2.feed_forward_length", .uint32(UInt32(c.ffnWidth))),
            ("lfm2.block_count", .uint32(UInt32(c.numHiddenLayers))),
            ("lfm2.attention.head_count", .uint32(UInt32(c.numAttentionHeads))),
            (
                "lfm2.attention.head_count_kv",
                .array(
                    .int32, (0..<c.numHiddenLayers).map { .int32(c.isAttention($0) ? Int32(c.numKeyValueHeads) : 0) })
            ),
            ("lfm2.rope.freq_base", .float32(Float(c.ropeTheta))),
            ("lfm2.attention.layer_norm_rms_epsilon", .float32(Float(c.normEps))),
            ("lfm2.vocab_size", .uint32(UInt32(c.vocabSize))),
            ("lfm2.shortconv.l_cache", .uint32(UInt32(c.convLCache))),
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("lfm2")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .strings(merges)),
            ("tokenizer.ggml.bos_token_id", .uint32(1)),
            ("tokenizer.ggml.eos_token_id", .uint32(7)),
            ("tokenizer.ggml.padding_token_id", .uint32(UInt32(ckpt.specialTokenIds["<|pad|>"] ?? 0))),
            ("tokenizer.ggml.add_bos_token", .bool(true)),
        ]
        if let t = ckpt.chatTemplate { m.append(("tokenizer.chat_template", .string(t))) }
        return m
    }

    /// `imatrix`: an importance matrix and its path; its backbone entries weight the quantizers (entries of the
    /// audio components are checked against the whole checkpoint and otherwise unused); `report` hears how.
    public static func export(
        _ ckpt: Checkpoint, preset: Preset, to destination: String, imatrix: (ImportanceMatrix, String)? = nil,
        report: (ImatrixReport) -> Void = { _ in }, options: ConvertOptions,
        progress: (@Sendable (ConvertProgress) -> Void)? = nil,
        isCancelled: @escaping @Sendable () -> Bool = { false }
    ) throws -> ConvertResult {
        var tensors = try plan(ckpt, preset: preset)
        if let (m, file) = imatrix {
            let whole = try Planner.plan(ckpt, recipe: Recipe(preset: .f32))
            report(
                try m.apply(
                    to: &tensors, known: ImportanceMatrix.knownMatrices(whole), file: file, checkpoint: ckpt.root,
                    entryName: { $0 }))
        }
        var meta = try metadata(ckpt, preset: preset)
        if let (m, file) = imatrix { meta += try m.provenance(file: file) }
        // GGUF's default alignment (32) and no general.alignment key, as llama.cpp's own converter writes: llama.cpp
        // tools that copy metadata (llama-quantize) then stay consistent.
        return try Converter.write(
            tensors, to: destination, sourceFiles: ckpt.model.files, root: ckpt.root, options: options, alignment: 32,
            metadata: { _, crcs in meta + [(BundleKeys.tensorCRC32, .uint32s(crcs))] },
            progress: progress, isCancelled: isCancelled)
    }
}

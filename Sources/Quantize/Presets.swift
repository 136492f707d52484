import Foundation
import Formats
#if canImport(Glibc)
import Glibc
#endif

/// Quantization presets. The preset names the type of the 2-D weight matrices; the table in
/// `Recipe.type(for:)` (documented in docs/format.md) decides everything else.
public enum Preset: String, CaseIterable, Sendable, Codable {
    case f32, f16, bf16, q8_0 = "q8_0", q4_0 = "q4_0"
    /// llama.cpp's K-quant mixes (docs/format.md §6).
    case q3_k_m = "q3_k_m", q4_k_m = "q4_k_m", q5_k_m = "q5_k_m", q6_k = "q6_k"
    public var matrixType: GGMLType {
        switch self {
        case .f32: return .f32;
        case .f16: return .f16;
        case .bf16: return .bf16;
        case .q8_0: return .q8_0;
        case .q4_0: return .q4_0
        case .q3_k_m: return .q3_K;
        case .q4_k_m: return .q4_K;
        case .q5_k_m: return .q5_K;
        case .q6_k: return .q6_K
        }
    }
    public var isQuantized: Bool { matrixType.isQuantized }
    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_MOSTLY_*) for this preset.
    public var llamaFileType: UInt32 {
        switch self {
        case .f32: return 0;
        case .f16: return 1;
        case .q4_0: return 2;
        case .q8_0: return 7
        case .q3_k_m: return 12;
        case .q4_k_m: return 15;
        case .q5_k_m: return 17;
        case .q6_k: return 18;
        case .bf16: return 32
        }
    }
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// The types `--override` accepts.
public let overrideTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q3_K, .q4_K, .q5_K, .q6_K]

/// `--override GLOB=TYPE`: shell-style glob on the bundle tensor name (with its `mimi.` / `detokenizer.` prefix).
public struct TypeOverride: Sendable, Equatable, CustomStringConvertible {
    public var glob: String
    public var type: GGMLType
    public init(glob: String, type: GGMLType) { self.glob = glob; self.type = type }
    public init(parsing s: String) throws {
        guard let eq = s.lastIndex(of: "=") else { throw QuantizeError.badOverride(s, "expected GLOB=TYPE") }
        let g = String(s[..<eq]), t = String(s[s.index(after: eq)...])
        guard !g.isEmpty else { throw QuantizeError.badOverride(s, "empty glob") }
        guard let ty = GGMLType(name: t), overrideTypes.contains(ty) else {
            throw QuantizeError.badOverride(
                s, "unknown type '\(t)' (\(overrideTypes.map { $0.name.lowercased() }.joined(separator: ", ")))")
        }
        glob = g; type = ty
    }
    public func matches(_ name: String) -> Bool { fnmatch(glob, name, 0) == 0 }
    public var description: String { "\(glob)=\(type.name.lowercased())" }
}

/// Preset + overrides: decides each tensor's stored type.
public struct Recipe: Sendable {
    public var preset: Preset
    public var overrides: [TypeOverride]
    /// The backbone's layer types (config `layer_types`), for the K-quant mixes' per-layer rules; the planner sets it.
    public var backboneLayers: [String] = []
    public init(preset: Preset, overrides: [TypeOverride] = []) { self.preset = preset; self.overrides = overrides }

    /// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third one between.
    public static func useMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

    /// The layer index in a `lfm.layers.N.` name.
    static func layerIndex(_ name: String) -> Int? {
        guard name.hasPrefix("lfm.layers.") else { return nil }
        return Int(name.dropFirst("lfm.layers.".count).prefix { $0.isNumber })
    }

    /// The backbone rules of llama.cpp's `llama_tensor_get_type` for Q3_K_M / Q4_K_M / Q5_K_M / Q6_K
    /// (llama-quant.cpp, `llama_tensor_get_type_impl`), as they apply to LFM2: the tied embedding (= output head)
    /// Q6_K; under Q4_K_M / Q5_K_M attention V and FFN down Q6_K on the `use_more_bits` layers (V counted over the
    /// attention layers only); under Q3_K_M attention V Q5_K on the first two attention layers and Q4_K after, FFN
    /// down Q5_K on the first sixteenth of the layers and Q4_K after, attention output Q4_K; everything else the
    /// preset's type.
    func kQuantBackbone(name: String, role: TensorRole) -> (GGMLType, String) {
        let t = preset.matrixType
        if role == .embedding { return (.q6_K, "tied embedding / output head: Q6_K (llama.cpp's output rule)") }
        guard preset != .q6_k, let layer = Recipe.layerIndex(name) else { return (t, "backbone matrix") }
        if preset == .q3_k_m { return q3KMBackbone(name: name, layer: layer) }
        if name.hasSuffix(".feed_forward.w2.weight") {
            let n = backboneLayers.isEmpty ? layer + 1 : backboneLayers.count
            if Recipe.useMoreBits(layer, n) { return (.q6_K, "ffn_down of layer \(layer)/\(n): Q6_K (use_more_bits)") }
        }
        if name.hasSuffix(".self_attn.v_proj.weight") {
            let attn = backboneLayers.indices.filter { backboneLayers[$0] != "conv" }
            if let i = attn.firstIndex(of: layer), Recipe.useMoreBits(i, attn.count) {
                return (.q6_K, "attn_v of attention layer \(i)/\(attn.count): Q6_K (use_more_bits)")
            }
        }
        return (t, "backbone matrix")
    }

    /// Q3_K_M's backbone rules (see kQuantBackbone).
    func q3KMBackbone(name: String, layer: Int) -> (GGMLType, String) {
        if name.hasSuffix(".feed_forward.w2.weight") {
            let n = backboneLayers.isEmpty ? layer + 1 : backboneLayers.count
            return layer < n / 16
                ? (.q5_K, "ffn_down of layer \(layer)/\(n): Q5_K (first sixteenth, Q3_K_M)")
                : (.q4_K, "ffn_down of layer \(layer)/\(n): Q4_K (Q3_K_M)")
        }
        if name.hasSuffix(".self_attn.v_proj.weight") {
            let attn = backboneLayers.indices.filter { backboneLayers[$0] != "conv" }
            let i = attn.firstIndex(of: layer) ?? 0
            return i < 2
                ? (.q5_K, "attn_v of attention layer \(i): Q5_K (first two, Q3_K_M)")
                : (.q4_K, "attn_v of attention layer \(i): Q4_K (Q3_K_M)")
        }
        if name.hasSuffix(".self_attn.out_proj.weight") { return (.q4_K, "attn_output: Q4_K (Q3_K_M)") }
        return (.q3_K, "backbone matrix")
    }

    /// Conv kernels at least this large are stored in half precision under quantized presets.
    public static let largeKernelElements = 1 << 18

    /// The stored type of a tensor, and why.
    public func type(
        name: String, shape: [Int], role: TensorRole, component: Component, sourceIsFloat: Bool
    ) -> (GGMLType, String) {
        guard sourceIsFloat else { return (.f32, "integer buffer") }
        let rowLength = shape.last ?? 1
        var (t, why) = base(name: name, shape: shape, role: role, component: component)
        for o in overrides where o.matches(name) { t = o.type; why = "override \(o)" }
        if t.isKQuant, rowLength % t.blockSize != 0, rowLength % 32 == 0 {
            return (.q8_0, "\(why); rows of \(rowLength) are not a multiple of 256, Q8_0 instead of \(t.name)")
        }
        if t.isQuantized, rowLength % t.blockSize != 0 {
            let fallback: GGMLType = preset == .bf16 ? .bf16 : (t == .f32 ? .f32 : .f16)
            return (fallback, "\(why); rows of \(rowLength) are not a multiple of 32, kept \(fallback.name)")
        }
        return (t, why)
    }

    func base(name: String, shape: [Int], role: TensorRole, component: Component) -> (GGMLType, String) {
        let count = shape.reduce(1, *)
        switch role {
        case .vector, .buffer:
            return (.f32, "norms, biases and vectors stay F32")
        case .convKernel:
            if !preset.isQuantized { return (preset.matrixType, "conv kernel: preset type") }
            return count >= Recipe.largeKernelElements
                ? (.f16, "large conv kernel: F16") : (.f32, "small conv kernel: F32")
        case .embedding, .matrix:
            if preset.matrixType.isKQuant { return kQuant(name: name, role: role, component: component) }
            guard preset == .q4_0 else { return (preset.matrixType, "preset type") }
            // q4_0: 4-bit only where the bytes are read every token and the error is tolerated.
            switch component {
            case .backbone:
                if role == .embedding { return (.q8_0, "tied embedding / output head: Q8_0 under q4_0") }
                return (.q4_0, "backbone matrix")
            case .depthformer:
                if name.hasPrefix("depth_embeddings.") { return (.q8_0, "per-codebook tables: Q8_0 under q4_0") }
                return (.q4_0, "depthformer matrix")
            case .conformer, .adapter, .audioEmbedding, .mimi, .detokenizer:
                return (.q8_0, "audio component: Q8_0 under q4_0")
            }
        }
    }

    /// The K-quant mixes: the backbone by llama.cpp's rules; the depthformer (read every audio frame, 8 times) by
    /// the preset's type with its per-codebook tables Q6_K; Mimi and the audio embeddings Q6_K, the audio encoder,
    /// adapter and detokenizer Q8_0 (chosen by each component's measured output error: docs/format.md §6).
    func kQuant(name: String, role: TensorRole, component: Component) -> (GGMLType, String) {
        switch component {
        case .backbone: return kQuantBackbone(name: name, role: role)
        case .depthformer:
            if name.hasPrefix("depth_embeddings.") { return (.q6_K, "per-codebook tables: Q6_K under K presets") }
            return (preset.matrixType, "depthformer matrix")
        case .mimi, .audioEmbedding:
            return (.q6_K, "Mimi / audio embeddings: Q6_K under K presets (their output error barely moves)")
        case .conformer, .adapter, .detokenizer:
            return (.q8_0, "audio encoder, adapter, detokenizer: Q8_0 under K presets (K types measured worse)")
        }
    }

    public var json: String {
        let o = overrides.map { "\"\($0.description)\"" }.joined(separator: ",")
        return
            """
            {\"preset\":\"\(preset.rawValue)\",\"overrides\":[\(o)],\"rules\":\"see docs/format.md §Quantization \
            presets\",\"large_kernel_elements\":\(Recipe.largeKernelElements)}
            """
    }
}

public enum QuantizeError: Error, CustomStringConvertible {
    case badOverride(String, String)
    case cancelled
    case source(file: String, tensor: String, detail: String)
    case integrity(file: String, problems: [String])
    public var description: String {
        switch self {
        case .badOverride(let s, let d): return "--override '\(s)': \(d)"
        case .cancelled: return "cancelled"
        case .source(let f, let t, let d): return "\(f): tensor '\(t)': \(d)"
        case .integrity(let f, let p):
            return "\(f): \(p.count) integrity problem\(p.count == 1 ? "" : "s"):\n"
                + p.prefix(40).map { "  - \($0)" }.joined(separator: "\n")
        }
    }
}

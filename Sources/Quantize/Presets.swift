import Foundation
import Formats
#if canImport(Glibc)
import Glibc
#endif

/// Quantization presets. The preset names the type of the 2-D weight matrices; the table in
/// `Recipe.type(for:)` (documented in docs/format.md) decides everything else.
public enum Preset: String, CaseIterable, Sendable, Codable {
    case f32, f16, bf16, q8_0 = "q8_0", q4_0 = "q4_0"
    public var matrixType: GGMLType {
        switch self {
        case .f32: return .f32;
        case .f16: return .f16;
        case .bf16: return .bf16;
        case .q8_0: return .q8_0;
        case .q4_0: return .q4_0
        }
    }
    public var isQuantized: Bool { self == .q8_0 || self == .q4_0 }
}

/// `--override GLOB=TYPE`: shell-style glob on the bundle tensor name (with its `mimi.` / `detokenizer.` prefix).
public struct TypeOverride: Sendable, Equatable, CustomStringConvertible {
    public var glob: String
    public var type: GGMLType
    public init(glob: String, type: GGMLType) { self.glob = glob; self.type = type }
    public init(parsing s: String) throws {
        guard let eq = s.lastIndex(of: "=") else { throw QuantizeError.badOverride(s, "expected GLOB=TYPE") }
        let g = String(s[..<eq]), t = String(s[s.index(after: eq)...])
        guard !g.isEmpty else { throw QuantizeError.badOverride(s, "empty glob") }
        guard let ty = GGMLType(name: t), [.f32, .f16, .bf16, .q8_0, .q4_0].contains(ty) else {
            throw QuantizeError.badOverride(s, "unknown type '\(t)' (f32, f16, bf16, q8_0, q4_0)")
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
    public init(preset: Preset, overrides: [TypeOverride] = []) { self.preset = preset; self.overrides = overrides }

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

    public var json: String {
        let o = overrides.map { "\"\($0.description)\"" }.joined(separator: ",")
        return
            "{\"preset\":\"\(preset.rawValue)\",\"overrides\":[\(o)],\"rules\":\"see docs/format.md §Quantization presets\",\"large_kernel_elements\":\(Recipe.largeKernelElements)}"
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

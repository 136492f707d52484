import Foundation
import Formats

/// Where a bundle tensor's values come from.
public enum TensorSource: Sendable {
    /// A checkpoint tensor, converted to the stored type (a reshape/squeeze at most).
    case stored(SafetensorsTensor)
    /// A tensor computed at conversion from checkpoint tensors (folded batch norm, Mimi centroids).
    case derived(inputs: [String], compute: @Sendable () -> [Float])
}

/// One tensor of the bundle to be written.
public struct PlannedTensor: Sendable {
    /// Bundle name: the checkpoint name (with `mimi.` / `detokenizer.` prefix) or a documented derived name.
    public var name: String
    /// Stored shape, PyTorch order.
    public var shape: [Int]
    public var role: TensorRole
    public var component: Component
    public var type: GGMLType
    /// Why this type was chosen.
    public var reason: String
    public var source: TensorSource
    /// Importance-matrix weights of the quantization error, one per input column (the row width
    /// `elementCount / shape[0]`); nil: the unweighted quantizer. Set by `ImportanceMatrix.apply`.
    public var importance: [Float]? = nil
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) }
    /// Source bytes (before conversion), for size reports.
    public var sourceBytes: Int {
        if case .stored(let t) = source { return t.byteCount }
        return elementCount * 4
    }
}

/// A checkpoint tensor left out of the bundle, and why.
public struct DroppedTensor: Sendable {
    public var name: String
    public var component: Component
    public var reason: String
    public var bytes: Int
}

/// A tie of the schema as this checkpoint resolved it: `derived` is read from `stored` (one copy in the bundle).
public struct ResolvedTie: Sendable, Equatable {
    public var derived: String
    public var stored: String
    public var key: String
    /// How the checkpoint held it: "both (equal)", "stored only", "derived only".
    public var held: String
}

/// Everything the converter will write, decided before a byte is written.
public struct ConversionPlan: Sendable {
    public var tensors: [PlannedTensor]
    public var dropped: [DroppedTensor]
    /// Ties written to the bundle's tie table.
    public var ties: [ResolvedTie] = []
    public var recipe: Recipe
    public var keepAll: Bool
    /// Metadata recorded about the inputs beyond the checkpoint (an importance matrix's provenance).
    public var extraMetadata: [(String, GGUFValue)] = []
    public var components: [Component] {
        Component.allCases.filter { c in tensors.contains { $0.component == c } }
    }
}

/// Builds and validates a conversion plan: every expected tensor present with the shape the config
/// implies, every checkpoint tensor accounted for (kept, transformed or dropped with a reason).
public enum Planner {
    static let mimiPrefix = BundleNames.mimiPrefix
    static let detokenizerPrefix = BundleNames.detokenizerPrefix
    public static let batchNormEps = 1e-5
    public static let codebookEpsilon: Float = 1e-5

    public static func plan(_ ckpt: Checkpoint, recipe: Recipe, keepAll: Bool = false) throws -> ConversionPlan {
        var recipe = recipe
        recipe.backboneLayers = ckpt.config.lfm.layerTypes
        var out: [PlannedTensor] = []
        var dropped: [DroppedTensor] = []

        // model.safetensors
        let modelFile = ckpt.model.files.count == 1 ? ckpt.model.files[0] : ckpt.root + "/" + CheckpointFiles.modelIndex
        let (modelSet, resolved) = try applyTies(ckpt.model, ties: Schema.ties(ckpt.config), file: modelFile)
        let derivedNames = Set(resolved.map(\.derived))
        let expected = Schema.model(ckpt.config).filter { !derivedNames.contains($0.name) }
        let matched = try match(modelSet, expected: expected, file: modelFile, extraDrop: { _ in nil })
        try emit(matched, prefix: "", recipe: recipe, keepAll: keepAll, into: &out, dropped: &dropped)
        // Batch norm folded into the depthwise conv (conformer conv module).
        let enc = ckpt.config.encoder
        let insertAt = out.firstIndex { $0.component == .adapter } ?? out.count
        var folded: [PlannedTensor] = []
        for i in 0..<enc.nLayers {
            let p = "conformer.layers.\(i).conv."
            let names = [
                "depthwise_conv.weight", "depthwise_conv.bias", "batch_norm.weight", "batch_norm.bias",
                "batch_norm.running_mean", "batch_norm.running_var",
            ].map { p + $0 }
            let ts = names.map { modelSet[$0]! }
            let d = enc.dModel, k = enc.convKernelSize
            let scale: @Sendable () -> [Double] = {
                let g = floats(ts[2]), v = floats(ts[5])
                return (0..<d).map { Double(g[$0]) / (Double(v[$0]) + batchNormEps).squareRoot() }
            }
            let wName = BundleNames.foldedDepthwise(i) + ".weight", bName = BundleNames.foldedDepthwise(i) + ".bias"
            let (wt, wr) = recipe.type(
                name: wName, shape: [d, 1, k], role: .convKernel, component: .conformer, sourceIsFloat: true)
            folded.append(
                PlannedTensor(
                    name: wName, shape: [d, 1, k], role: .convKernel, component: .conformer, type: wt,
                    reason: wr + "; batch norm folded: w·γ/√(σ²+ε)",
                    source: .derived(
                        inputs: names,
                        compute: {
                            let w = floats(ts[0]), s = scale()
                            return (0..<d * k).map { Float(Double(w[$0]) * s[$0 / k]) }
                        })))
            folded.append(
                PlannedTensor(
                    name: bName, shape: [d], role: .vector, component: .conformer, type: .f32,
                    reason: "batch norm folded: (b−μ)·γ/√(σ²+ε)+β",
                    source: .derived(
                        inputs: names,
                        compute: {
                            let b = floats(ts[1]), beta = floats(ts[3]), mean = floats(ts[4]), s = scale()
                            return (0..<d).map { Float((Double(b[$0]) - Double(mean[$0])) * s[$0] + Double(beta[$0])) }
                        })))
        }
        out.insert(contentsOf: folded, at: insertAt)

        // Mimi: decode half only.
        if let mimi = ckpt.mimi {
            let used = ckpt.config.codebooks
            let exp = Schema.mimiDecode(mimi.config, usedCodebooks: used)
            var problems: [String] = []
            for name in mimi.tensors.names where name.hasSuffix(".weight_g") || name.hasSuffix(".weight_v") {
                problems.append(
                    "\(name): weight-norm parametrisation is not folded (the reference loads folded weights only)")
            }
            if !problems.isEmpty { throw FormatsError.validation(file: mimi.file, problems: problems) }
            let m = try match(
                mimi.tensors, expected: exp, file: mimi.file,
                extraDrop: { Schema.mimiDropReason($0, usedCodebooks: used) })
            try emit(m, prefix: mimiPrefix, recipe: recipe, keepAll: keepAll, into: &out, dropped: &dropped)
            // Centroids E = embedding_sum / max(cluster_usage, ε), per used codebook.
            let q = mimi.config.quantizer
            for k in 0..<max(used, 1) {
                let cb = BundleNames.mimiCodebook(k)
                let sum = mimi.tensors[cb + "embedding_sum"]!, usage = mimi.tensors[cb + "cluster_usage"]!
                let dim = q.dimension
                out.append(
                    PlannedTensor(
                        name: BundleNames.mimiCentroids(k), shape: [q.bins, dim], role: .vector, component: .mimi,
                        type: .f32,
                        reason: "Mimi centroids embedding_sum / max(cluster_usage, 1e-5)",
                        source: .derived(
                            inputs: [cb + "embedding_sum", cb + "cluster_usage"],
                            compute: {
                                let s = floats(sum), u = floats(usage)
                                return (0..<s.count).map { s[$0] / max(u[$0 / dim], codebookEpsilon) }
                            })))
            }
        }

        // LFM2 detokenizer.
        if let det = ckpt.detokenizer {
            let exp = Schema.detokenizer(det.config)
            let file = det.tensors.files.first ?? det.configFile
            let m = try match(det.tensors, expected: exp, file: file, extraDrop: { _ in nil })
            try emit(m, prefix: detokenizerPrefix, recipe: recipe, keepAll: keepAll, into: &out, dropped: &dropped)
        }
        var plan = ConversionPlan(tensors: out, dropped: dropped, recipe: recipe, keepAll: keepAll)
        let kept = Set(out.map(\.name))
        // A derived member that inference never reads (audio_embedding.to_logits) needs no entry unless --keep-all.
        let dropReasons = Dictionary(
            Schema.model(ckpt.config).map { ($0.name, $0.dropReason) }, uniquingKeysWith: { a, _ in a })
        plan.ties = resolved.filter { kept.contains($0.stored) && (keepAll || dropReasons[$0.derived] ?? nil == nil) }
        return plan
    }

    /// Applies the schema's ties to a tensor set: each derived member is removed (its stored member is written once
    /// and the bundle's tie table points the derived name at it). Both present and equal (element-wise, as float
    /// values): fine. Only the derived one present: its entry is read as the stored member. Both present and
    /// different: an error naming the pair — the reference's loader (accelerate `load_checkpoint_in_model`, from
    /// `LFM2AudioModel.from_pretrained`, liquid_audio/model/lfm2_audio.py) silently keeps the value loaded last
    /// (probed with liquid-audio 1.3.0: the Parameter stays shared and ends up holding `to_logits.weight`).
    static func applyTies(_ set: TensorSet, ties: [TensorTie], file: String) throws -> (TensorSet, [ResolvedTie]) {
        var out = set
        var resolved: [ResolvedTie] = []
        var problems: [String] = []
        for tie in ties {
            let a = set[tie.stored], b = set[tie.derived]
            switch (a, b) {
            case let (a?, b?):
                if a.shape != b.shape {
                    problems.append(
                        """
                        tied tensors '\(tie.stored)' \(a.shape) and '\(tie.derived)' \(b.shape) have different \
                        shapes (\(tie.key) is true in config.json)
                        """
                    )
                } else if let i = firstDifference(a, b) {
                    problems.append(
                        """
                        tied tensors '\(tie.stored)' and '\(tie.derived)' differ (first at element \(i)), but \
                        \(tie.key) is true in config.json, so the model uses one Parameter for both; re-save the \
                        checkpoint, or set \(tie.key) to false if they were trained untied
                        """
                    )
                }
                out.tensors[tie.derived] = nil
                resolved.append(
                    ResolvedTie(derived: tie.derived, stored: tie.stored, key: tie.key, held: "both (equal)"))
            case (_?, nil):
                resolved.append(
                    ResolvedTie(derived: tie.derived, stored: tie.stored, key: tie.key, held: "stored only"))
            case let (nil, b?):
                out.tensors[tie.derived] = nil
                out.tensors[tie.stored] = b.renamed(tie.stored)
                resolved.append(
                    ResolvedTie(derived: tie.derived, stored: tie.stored, key: tie.key, held: "derived only"))
            case (nil, nil):
                break  // reported as the stored member missing
            }
        }
        if !problems.isEmpty { throw FormatsError.validation(file: file, problems: problems) }
        return (out, resolved)
    }

    /// The first element index where two same-shape tensors differ as float values (nil: equal).
    /// Non-float members are compared byte for byte only (the dtype itself is reported by `match`).
    static func firstDifference(_ a: SafetensorsTensor, _ b: SafetensorsTensor) -> Int? {
        if a.dtype == b.dtype {
            if a.byteCount == 0 || memcmp(a.bytes.baseAddress!, b.bytes.baseAddress!, a.byteCount) == 0 { return nil }
        }
        guard a.dtype.isFloat, b.dtype.isFloat else { return a.dtype == b.dtype ? 0 : nil }
        let n = a.elementCount, step = 1 << 16
        let x = UnsafeMutablePointer<Float>.allocate(capacity: step),
            y = UnsafeMutablePointer<Float>.allocate(capacity: step)
        defer { x.deallocate(); y.deallocate() }
        var s = 0
        while s < n {
            let c = min(step, n - s)
            Codec.readFloats(a, start: s, count: c, into: x)
            Codec.readFloats(b, start: s, count: c, into: y)
            for i in 0..<c where x[i] != y[i] && !(x[i].isNaN && y[i].isNaN) { return s + i }
            s += c
        }
        return nil
    }

    struct Match { var expected: ExpectedTensor?; var tensor: SafetensorsTensor; var extraDrop: String? }

    /// Matches a tensor set against the expected list; throws one error listing every problem.
    static func match(
        _ set: TensorSet, expected: [ExpectedTensor], file: String, extraDrop: (String) -> String?
    ) throws -> [Match] {
        var problems: [String] = []
        var result: [Match] = []
        var used = Set<String>()
        for e in expected {
            let candidates = [e.name] + e.aliases
            guard let name = candidates.first(where: { set[$0] != nil }), let t = set[name] else {
                problems.append("missing tensor '\(e.name)' (expected shape \(e.shape))")
                continue
            }
            used.insert(name)
            if t.shape != e.shape {
                problems.append("tensor '\(name)' has shape \(t.shape), the config implies \(e.shape)")
                continue
            }
            if e.role != .buffer, !t.dtype.isFloat {
                problems.append("tensor '\(name)' has dtype \(t.dtype.rawValue), a float type is required")
                continue
            }
            result.append(Match(expected: e, tensor: t, extraDrop: nil))
        }
        for name in set.names where !used.contains(name) {
            if let why = extraDrop(name) {
                result.append(Match(expected: nil, tensor: set[name]!, extraDrop: why))
            } else {
                problems.append("unexpected tensor '\(name)' \(set[name]!.shape) (not part of this config)")
            }
        }
        if !problems.isEmpty { throw FormatsError.validation(file: file, problems: problems) }
        return result
    }

    static func emit(
        _ matches: [Match], prefix: String, recipe: Recipe, keepAll: Bool,
        into out: inout [PlannedTensor], dropped: inout [DroppedTensor]
    ) throws {
        for m in matches {
            let t = m.tensor
            // a tensor found under one of the schema's aliases is written under its canonical name: the one the
            // runtime, the verifier and the llama export read
            let name = prefix + (m.expected?.name ?? t.name)
            let role = m.expected?.role ?? (t.dtype.isFloat ? (t.shape.count >= 2 ? .matrix : .vector) : .buffer)
            let component = m.expected?.component ?? .mimi
            if let why = m.expected?.dropReason ?? m.extraDrop, !keepAll {
                dropped.append(DroppedTensor(name: name, component: component, reason: why, bytes: t.byteCount))
                continue
            }
            var shape = t.shape
            if shape.isEmpty { shape = [1] }
            if role == .matrix, shape.count > 2, shape.dropFirst(2).allSatisfy({ $0 == 1 }) {
                shape = Array(shape.prefix(2))
            }
            guard shape.count <= 4 else {
                throw QuantizeError.source(
                    file: t.file.path, tensor: t.name, detail: "\(shape.count) dimensions; GGUF allows at most 4")
            }
            var (type, reason) = recipe.type(
                name: name, shape: shape, role: role, component: component, sourceIsFloat: t.dtype.isFloat)
            if !t.dtype.isFloat {
                guard let same = Codec.identicalType(t.dtype) else {
                    throw QuantizeError.source(
                        file: t.file.path, tensor: t.name, detail: "dtype \(t.dtype.rawValue) has no ggml type")
                }
                type = same; reason = "integer buffer kept as \(same.name)"
            }
            out.append(
                PlannedTensor(
                    name: name, shape: shape, role: role, component: component, type: type, reason: reason,
                    source: .stored(t)))
        }
    }

    /// All elements of a small tensor as float32.
    @Sendable static func floats(_ t: SafetensorsTensor) -> [Float] {
        [Float](unsafeUninitializedCapacity: t.elementCount) { buf, n in
            Codec.readFloats(t, start: 0, count: t.elementCount, into: buf.baseAddress!)
            n = t.elementCount
        }
    }
}

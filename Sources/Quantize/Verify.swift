import Foundation
import Formats

/// Error statistics of a stored tensor against its float32 source.
public struct ErrorStats: Sendable, Codable {
    public var maxAbs: Double = 0
    public var sumSqErr: Double = 0
    public var sumSqRef: Double = 0
    public var dot: Double = 0
    public var sumSqOut: Double = 0
    public var count: Int = 0
    public init() {}
    public var rmse: Double { count > 0 ? (sumSqErr / Double(count)).squareRoot() : 0 }
    /// Signal-to-noise ratio in dB (infinite when exact).
    public var snrDB: Double { sumSqErr == 0 ? .infinity : 10 * log10(max(sumSqRef, 1e-300) / sumSqErr) }
    public var cosine: Double {
        let d = (sumSqRef * sumSqOut).squareRoot()
        return d > 0 ? dot / d : (sumSqErr == 0 ? 1 : 0)
    }
    public mutating func add(ref: UnsafePointer<Float>, out: UnsafePointer<Float>, count n: Int) {
        var m = maxAbs, se = 0.0, sr = 0.0, dt = 0.0, so = 0.0
        for i in 0..<n {
            let r = Double(ref[i]), o = Double(out[i]), e = o - r
            m = max(m, abs(e)); se += e * e; sr += r * r; dt += r * o; so += o * o
        }
        maxAbs = m; sumSqErr += se; sumSqRef += sr; dot += dt; sumSqOut += so; count += n
    }
    public mutating func merge(_ o: ErrorStats) {
        maxAbs = max(maxAbs, o.maxAbs); sumSqErr += o.sumSqErr; sumSqRef += o.sumSqRef; dot += o.dot;
        sumSqOut += o.sumSqOut; count += o.count
    }
}

public struct TensorCheck: Sendable {
    public var name: String
    public var type: GGMLType
    public var component: String
    public var crcOK: Bool
    public var stats: ErrorStats?
}

/// Bundle integrity and accuracy checks (`lfm-convert verify`).
public enum Verifier {
    /// Component of a bundle tensor, from its name.
    public static func component(of name: String) -> Component {
        if name.hasPrefix(Planner.mimiPrefix) { return .mimi }
        if name.hasPrefix(Planner.detokenizerPrefix) { return .detokenizer }
        if name.hasPrefix("lfm.") { return .backbone }
        if name.hasPrefix("conformer.") { return .conformer }
        if name.hasPrefix("audio_adapter.") { return .adapter }
        if name.hasPrefix("audio_embedding.") || name == "codebook_offsets" || name == "audio_loss_weights" {
            return .audioEmbedding
        }
        return .depthformer
    }

    /// The stored CRC32 list; throws if the key is absent or has the wrong length.
    public static func storedCRCs(_ b: GGUFFile) throws -> [UInt32] {
        guard let v = b.metadata[BundleKeys.tensorCRC32]?.arrayValue else {
            throw FormatsError.badHeader(file: b.path, detail: "no \(BundleKeys.tensorCRC32) metadata")
        }
        let crcs = v.compactMap { if case .uint32(let c) = $0 { return c } else { return nil } }
        guard crcs.count == b.tensors.count, crcs.count == v.count else {
            throw FormatsError.badHeader(
                file: b.path, detail: "\(BundleKeys.tensorCRC32) has \(v.count) entries for \(b.tensors.count) tensors")
        }
        return crcs
    }

    /// Checks every tensor's CRC32 (in parallel) and, when a checkpoint is given, measures the error of
    /// every stored tensor against its source (dequantized, in float32).
    public static func verify(_ b: GGUFFile, against ckpt: Checkpoint? = nil, threads: Int) throws -> [TensorCheck] {
        let crcs = try storedCRCs(b)
        var sources: [String: PlannedTensor] = [:]
        if let ckpt {
            let presetName = b.metadata[BundleKeys.preset]?.stringValue ?? "f32"
            let recipe = Recipe(preset: Preset(rawValue: presetName) ?? .f32)
            for t in try Planner.plan(ckpt, recipe: recipe, keepAll: true).tensors { sources[t.name] = t }
        }
        let planned = sources
        let results = ResultBox(count: b.tensors.count)
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, b.tensors.count))) { _ in
            while let i = next.take(below: b.tensors.count) {
                let t = b.tensors[i]
                let bytes = b.bytes(of: t)
                let ok = Hashing.crc32(bytes) == crcs[i]
                var stats: ErrorStats? = nil
                if let src = planned[t.name], src.elementCount == t.elementCount {
                    stats = compare(bytes: bytes, type: t.type, source: src)
                }
                results.set(
                    i,
                    TensorCheck(
                        name: t.name, type: t.type, component: component(of: t.name).rawValue, crcOK: ok, stats: stats))
            }
        }
        return results.values.map { $0! }
    }

    static func compare(bytes: UnsafeRawBufferPointer, type: GGMLType, source: PlannedTensor) -> ErrorStats {
        var stats = ErrorStats()
        let n = source.elementCount
        switch source.source {
        case .derived(_, let compute):
            let ref = compute()
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer {
                Codec.decode(bytes.baseAddress!, count: n, type: type, into: $0.baseAddress!)
            }
            ref.withUnsafeBufferPointer { r in
                out.withUnsafeBufferPointer { o in stats.add(ref: r.baseAddress!, out: o.baseAddress!, count: n) }
            }
        case .stored(let src):
            let row = max(source.shape.last ?? 1, 1)
            let step = max(1, Converter.chunkElements / row) * row
            let ref = UnsafeMutablePointer<Float>.allocate(capacity: min(step, n))
            let out = UnsafeMutablePointer<Float>.allocate(capacity: min(step, n))
            defer { ref.deallocate(); out.deallocate() }
            var s = 0
            while s < n {
                let c = min(step, n - s)
                Codec.readFloats(src, start: s, count: c, into: ref)
                Codec.decode(bytes.baseAddress! + type.byteCount(elements: s), count: c, type: type, into: out)
                stats.add(ref: ref, out: out, count: c)
                s += c
            }
        }
        return stats
    }

    final class ResultBox: @unchecked Sendable {
        let lock = NSLock()
        var values: [TensorCheck?]
        init(count: Int) { values = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ v: TensorCheck) { lock.lock(); values[i] = v; lock.unlock() }
    }
    final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var i = 0
        func take(below n: Int) -> Int? {
            lock.lock(); defer { lock.unlock() }; guard i < n else { return nil }; i += 1; return i - 1
        }
    }
}

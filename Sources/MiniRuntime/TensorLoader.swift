import Foundation
import Formats

/// Errors of the runtime, with the file, tensor and expected-vs-got context.
public enum RuntimeError: Error, CustomStringConvertible {
    case missingTensor(file: String, tensor: String)
    case badShape(file: String, tensor: String, expected: [Int], got: [Int])
    case badType(file: String, tensor: String, type: String)
    case unconsumed(file: String, tensors: [String])
    case contextOverflow(limit: Int, needed: Int)
    case badInput(String)
    case tokenizer(file: String, detail: String)
    case cancelled

    public var description: String {
        switch self {
        case .missingTensor(let f, let t): return "\(f): tensor '\(t)' is missing"
        case .badShape(let f, let t, let e, let g): return "\(f): tensor '\(t)' has shape \(g), expected \(e)"
        case .badType(let f, let t, let ty): return "\(f): tensor '\(t)' has type \(ty), which this layer cannot read"
        case .unconsumed(let f, let ts):
            return "\(f): \(ts.count) tensors were not used by any layer: \(ts.prefix(8).joined(separator: ", "))"
        case .contextOverflow(let l, let n):
            return "context limit of \(l) positions exceeded (\(n) needed); start a new session or raise --ctx"
        case .badInput(let s): return s
        case .tokenizer(let f, let d): return "\(f): tokenizer: \(d)"
        case .cancelled: return "cancelled"
        }
    }
}

/// Hands out a bundle's tensors by name, checking shapes, and records which were consumed so that loading
/// can verify every tensor of a component was used.
final class TensorLoader {
    let bundle: ModelBundle
    private(set) var consumed = Set<String>()
    var file: String { bundle.gguf.path }
    init(_ b: ModelBundle) { bundle = b }

    func info(_ name: String, shape: [Int]) throws -> (GGUFTensorInfo, UnsafeRawBufferPointer) {
        guard let (info, bytes) = bundle.tensor(name) else {
            throw RuntimeError.missingTensor(file: file, tensor: name)
        }
        guard info.shape == shape else {
            throw RuntimeError.badShape(file: file, tensor: name, expected: shape, got: info.shape)
        }
        consumed.insert(name)
        return (info, bytes)
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> Matrix {
        let (info, bytes) = try info(name, shape: [rows, cols])
        guard [.f32, .f16, .bf16, .q8_0, .q4_0, .q3_K, .q4_K, .q5_K, .q6_K].contains(info.type) else {
            throw RuntimeError.badType(file: file, tensor: name, type: info.type.name)
        }
        return Matrix(name: name, type: info.type, data: bytes.baseAddress!, rows: rows, cols: cols)
    }

    /// A small tensor as float32 (norm weights, biases, kernels): read in place when F32, else converted once.
    func floats(_ name: String, shape: [Int]) throws -> [Float] {
        let (info, bytes) = try info(name, shape: shape)
        let n = info.elementCount
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            let m = Matrix(name: name, type: info.type, data: bytes.baseAddress!, rows: 1, cols: n)
            if info.type.isQuantized || [.f32, .f16, .bf16].contains(info.type) { m.row(0, into: o.baseAddress!) }
        }
        return out
    }

    /// Throws if any tensor with one of `prefixes` was not consumed.
    func checkAllConsumed(prefixes: [String], except: (String) -> Bool = { _ in false }) throws {
        let left = bundle.gguf.tensors.map(\.name).filter { n in
            prefixes.contains { n.hasPrefix($0) } && !consumed.contains(n) && !except(n)
        }
        if !left.isEmpty { throw RuntimeError.unconsumed(file: file, tensors: left) }
    }
}

import Foundation
import Formats
import CKernels

/// A dense layer y = W x + b over a bundle matrix (any stored type) and an optional float bias.
struct Linear: Sendable {
    let w: Matrix
    let bias: [Float]?
    var inFeatures: Int { w.cols }
    var outFeatures: Int { w.rows }

    init(_ L: TensorLoader, _ prefix: String, out: Int, in inF: Int, bias hasBias: Bool = true) throws {
        w = try L.matrix(prefix + ".weight", rows: out, cols: inF)
        bias = hasBias ? try L.floats(prefix + ".bias", shape: [out]) : nil
    }

    /// Y[t] = W X[t] + b for T rows; X rows `ldx` floats apart, Y rows `ldy` apart. `act` carries the input to
    /// the kernels (and its quantized form when the weights want one).
    func callAsFunction(
        _ X: UnsafePointer<Float>, ldx: Int? = nil, rows T: Int, into Y: UnsafeMutablePointer<Float>, ldy: Int? = nil,
        act: Activations, pool: WorkerPool
    ) {
        let lx = ldx ?? inFeatures, ly = ldy ?? outFeatures
        act.bind(X, rows: T, cols: inFeatures, ld: lx)
        w.matmul(act, into: Y, ldy: ly, pool: pool)
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for t in 0..<T { Ops.add(Y + t * ly, b.baseAddress!, outFeatures) }
            }
        }
    }
}

/// LayerNorm over the last dimension with affine weight and bias.
struct LayerNorm: Sendable {
    let weight: [Float], bias: [Float]
    let eps: Float
    init(_ L: TensorLoader, _ prefix: String, dim: Int, eps: Float = 1e-5) throws {
        weight = try L.floats(prefix + ".weight", shape: [dim])
        bias = try L.floats(prefix + ".bias", shape: [dim])
        self.eps = eps
    }
    func callAsFunction(_ x: UnsafePointer<Float>, rows T: Int, into y: UnsafeMutablePointer<Float>) {
        let n = weight.count
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                for t in 0..<T { lfm_layernorm(x + t * n, w.baseAddress!, b.baseAddress!, Int32(n), eps, y + t * n) }
            }
        }
    }
}

/// Sees the input of every matrix product (`Matrix.matmul`, the one entry point every layer's products go
/// through): the weight's bundle name and the T input rows. For tools (`lfm-convert imatrix` records per-column
/// sums of squared activations with it). Not installed: one load and a nil test per product.
@_spi(Tools) public protocol ActivationObserver: AnyObject, Sendable {
    /// `x`: `rows` rows of `cols` floats, `ld` floats apart. Called on the thread that runs the product, before it.
    func observe(matrix: String, x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int)
}

@_spi(Tools) public enum ActivationHook {
    /// The installed observer. Set it before models run and clear it after; products on other threads read it
    /// without a lock.
    nonisolated(unsafe) public static var observer: (any ActivationObserver)?
}

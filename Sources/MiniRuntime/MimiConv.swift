import Foundation
import Formats
import CKernels

/// Causal Conv1d with streaming state (moshi `StreamingConv1d`, stride 1, dilation 1, left zero padding K−1):
/// y[t] = b + Σ_k W_k · x[t − (K−1) + k]. Time-major activations [T][C]; the weights are re-laid out once as
/// [out][K·in] so one matrix product over an im2col view does the work. State: the last K−1 input rows.
final class StreamingConv1d: StreamingModule, @unchecked Sendable {
    // @unchecked: `w` is written once in init and only read afterwards.
    let cin: Int, cout: Int, k: Int
    let w: UnsafeMutablePointer<Float>  // [out][k][in]
    let bias: [Float]
    let mat: Matrix

    let pool: WorkerPool
    init(_ L: TensorLoader, _ prefix: String, cin: Int, cout: Int, kernel: Int, pool: WorkerPool) throws {
        self.cin = cin; self.cout = cout; k = kernel; self.pool = pool
        let raw =
            kernel == 1
            ? try L.floats(prefix + ".weight", shape: [cout, cin])
            : try L.floats(prefix + ".weight", shape: [cout, cin, kernel])
        w = .allocate(capacity: cout * kernel * cin)
        for o in 0..<cout {
            for i in 0..<cin { for j in 0..<kernel { w[(o * kernel + j) * cin + i] = raw[(o * cin + i) * kernel + j] } }
        }
        bias = try L.floats(prefix + ".bias", shape: [cout])
        mat = Matrix(name: prefix, type: .f32, data: UnsafeRawPointer(w), rows: cout, cols: kernel * cin)
    }
    deinit { w.deallocate() }
    func makeState() -> Carry { Carry(count: (k - 1) * cin) }

    /// The last K−1 input rows, [(K−1)][in], oldest first (a ConvTranspose1d keeps its K − S partial rows here).
    final class Carry: StreamingState {
        var values: [Float]
        init(count: Int) { values = [Float](repeating: 0, count: count) }
        func reset() { for i in values.indices { values[i] = 0 } }
        var bytes: Int { values.count * MemoryLayout<Float>.size }
    }

    /// x: T × in (time-major) → T × out.
    func step(_ x: [Float], state: Carry) -> [Float] { step(x, T: x.count / cin, state: state) }

    func step(_ x: [Float], T: Int, state: Carry) -> [Float] {
        var y = [Float](repeating: 0, count: T * cout)
        let kc = k * cin
        var cols = [Float](repeating: 0, count: T * kc)
        // im2col over [prev; x]
        let full = state.values + x
        full.withUnsafeBufferPointer { f in
            cols.withUnsafeMutableBufferPointer { c in
                for t in 0..<T { (c.baseAddress! + t * kc).update(from: f.baseAddress! + t * cin, count: kc) }
            }
        }
        cols.withUnsafeBufferPointer { c in
            y.withUnsafeMutableBufferPointer { yb in
                mat.matmul(c.baseAddress!, ldx: kc, rows: T, into: yb.baseAddress!, ldy: cout, pool: pool)
                bias.withUnsafeBufferPointer { b in
                    for t in 0..<T { Ops.add(yb.baseAddress! + t * cout, b.baseAddress!, cout) }
                }
            }
        }
        if k > 1 { state.values = Array(full.suffix((k - 1) * cin)) }
        return y
    }
}

/// Causal ConvTranspose1d with streaming state (moshi `StreamingConvTranspose1d`, right trim K − S):
/// z[tS + k] += W[:, :, k]ᵀ x[t]; the first T·S rows (plus the carried partial sums) are emitted with the bias; the
/// last K − S rows are carried, without bias. Weights laid out as [(k·out + o)][in].
final class StreamingConvTranspose1d: StreamingModule, @unchecked Sendable {
    // @unchecked: `w` is written once in init and only read afterwards.
    let cin: Int, cout: Int, k: Int, stride: Int
    let w: UnsafeMutablePointer<Float>
    let bias: [Float]?
    let mat: Matrix
    let depthwise: Bool

    /// `depthwise`: groups = channels (weight [C, 1, K]), as Mimi's upsampler.
    let pool: WorkerPool
    init(
        _ L: TensorLoader, _ prefix: String, cin: Int, cout: Int, kernel: Int, stride s: Int, bias hasBias: Bool = true,
        depthwise dw: Bool = false, pool: WorkerPool
    ) throws {
        self.pool = pool
        self.cin = cin; self.cout = cout; k = kernel; stride = s; depthwise = dw
        if dw {
            let raw = try L.floats(prefix + ".weight", shape: [cin, 1, kernel])
            w = .allocate(capacity: kernel * cin)
            for c in 0..<cin { for j in 0..<kernel { w[j * cin + c] = raw[c * kernel + j] } }
        } else {
            let raw = try L.floats(prefix + ".weight", shape: [cin, cout, kernel])
            w = .allocate(capacity: kernel * cout * cin)
            for i in 0..<cin {
                for o in 0..<cout {
                    for j in 0..<kernel { w[(j * cout + o) * cin + i] = raw[(i * cout + o) * kernel + j] }
                }
            }
        }
        bias = hasBias ? try L.floats(prefix + ".bias", shape: [cout]) : nil
        mat = Matrix(name: prefix, type: .f32, data: UnsafeRawPointer(w), rows: dw ? 0 : kernel * cout, cols: cin)
    }
    deinit { w.deallocate() }
    /// The carried partial sums, [(K−S)][out].
    func makeState() -> StreamingConv1d.Carry { StreamingConv1d.Carry(count: (k - stride) * cout) }

    /// x: T × in → (T·S) × out.
    func step(_ x: [Float], state: StreamingConv1d.Carry) -> [Float] { step(x, T: x.count / cin, state: state) }

    func step(_ x: [Float], T: Int, state: StreamingConv1d.Carry) -> [Float] {
        let L = (T - 1) * stride + k
        var z = [Float](repeating: 0, count: L * cout)
        if depthwise {
            for t in 0..<T {
                for j in 0..<k {
                    let zr = (t * stride + j) * cout
                    for c in 0..<cout { z[zr + c] += w[j * cout + c] * x[t * cin + c] }
                }
            }
        } else {
            var prod = [Float](repeating: 0, count: T * k * cout)
            x.withUnsafeBufferPointer { xb in
                prod.withUnsafeMutableBufferPointer { p in
                    mat.matmul(xb.baseAddress!, ldx: cin, rows: T, into: p.baseAddress!, ldy: k * cout, pool: pool)
                }
            }
            for t in 0..<T {
                for j in 0..<k {
                    let zr = (t * stride + j) * cout, pr = (t * k + j) * cout
                    for o in 0..<cout { z[zr + o] += prod[pr + o] }
                }
            }
        }
        for i in 0..<state.values.count { z[i] += state.values[i] }
        let n = T * stride
        state.values = Array(z[(n * cout)...])
        var y = Array(z[0..<(n * cout)])
        if let bias { for t in 0..<n { for o in 0..<cout { y[t * cout + o] += bias[o] } } }
        return y
    }
}

/// ELU (alpha 1): x > 0 ? x : expm1(x) (vectorized in CKernels).
func elu(_ x: [Float]) -> [Float] {
    var y = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { a in
        y.withUnsafeMutableBufferPointer { lfm_elu(a.baseAddress!, $0.baseAddress!, x.count) }
    }
    return y
}

/// SEANet residual block (true skip): x + conv_k1(ELU(conv_k3(ELU(x)))).
final class SEANetResBlock: StreamingModule {
    let c1: StreamingConv1d, c2: StreamingConv1d
    init(_ L: TensorLoader, _ prefix: String, dim: Int, hidden: Int, kernel: Int, pool: WorkerPool) throws {
        c1 = try StreamingConv1d(L, prefix + ".block.1.conv.conv", cin: dim, cout: hidden, kernel: kernel, pool: pool)
        c2 = try StreamingConv1d(L, prefix + ".block.3.conv.conv", cin: hidden, cout: dim, kernel: 1, pool: pool)
    }
    func makeState() -> StateList<StreamingConv1d.Carry> { StateList([c1.makeState(), c2.makeState()]) }
    func step(_ x: [Float], state: StateList<StreamingConv1d.Carry>) -> [Float] {
        let h = c2.step(elu(c1.step(elu(x), state: state[0])), state: state[1])
        var y = x
        for i in y.indices { y[i] += h[i] }
        return y
    }
}

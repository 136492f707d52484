import Foundation
import CKernels
import Formats

/// A raw pointer that may cross threads (the pool's workers read weights and write disjoint outputs).
struct SendablePtr<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// The persistent worker pool (C, `lfm_pool_*`): fork/join over `threads` threads, the caller included.
public final class WorkerPool: @unchecked Sendable {
    let pool: OpaquePointer
    public let threads: Int
    public init(threads: Int) {
        self.threads = max(1, threads)
        pool = lfm_pool_create(Int32(self.threads))
    }
    deinit { lfm_pool_destroy(pool) }

    private final class Box { let body: (Int, Int) -> Void; init(_ b: @escaping (Int, Int) -> Void) { body = b } }

    /// Runs body(ith, nth) on every thread and waits.
    func run(_ body: (Int, Int) -> Void) {
        withoutActuallyEscaping(body) { b in
            let box = Box(b)
            let ctx = Unmanaged.passUnretained(box).toOpaque()
            lfm_pool_run(pool, { ctx, ith, nth in
                Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue().body(Int(ith), Int(nth))
            }, ctx)
            withExtendedLifetime(box) {}
        }
    }

    /// Splits [0, n) in pieces aligned to `align` and runs body(begin, end) on each thread's piece.
    func parallelFor(_ n: Int, align: Int = 4, _ body: (Int, Int) -> Void) {
        if threads == 1 || n <= align { body(0, n); return }
        run { ith, nth in
            let units = (n + align - 1) / align
            let per = (units + nth - 1) / nth
            let b = min(n, ith * per * align), e = min(n, (ith + 1) * per * align)
            if b < e { body(b, e) }
        }
    }
}

/// A weight matrix [rows, cols] read in place from the bundle, in any of the stored types.
struct Matrix: @unchecked Sendable {
    let name: String
    let type: GGMLType
    let data: UnsafeRawPointer
    let rows: Int
    let cols: Int
    var usesQuantizedActivations: Bool { type == .q8_0 || type == .q4_0 }
}

/// Activations quantized once per input vector and shared by every matrix that reads them.
final class QuantizedActivations {
    var q: UnsafeMutablePointer<Int8>
    var d: UnsafeMutablePointer<Float>
    var s: UnsafeMutablePointer<Int32>
    var capacity: Int
    init(capacity: Int) {
        self.capacity = max(capacity, 32)
        q = .allocate(capacity: self.capacity); d = .allocate(capacity: self.capacity / 32 + 1); s = .allocate(capacity: self.capacity / 32 + 1)
    }
    deinit { q.deallocate(); d.deallocate(); s.deallocate() }
    /// Grows the buffers to hold at least `n` values.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        q.deallocate(); d.deallocate(); s.deallocate()
        capacity = n
        q = .allocate(capacity: n); d = .allocate(capacity: n / 32 + 1); s = .allocate(capacity: n / 32 + 1)
    }
    /// Quantizes T rows of `cols` floats (rows `ld` apart).
    func set(_ x: UnsafePointer<Float>, rows T: Int, cols: Int, ld: Int) {
        precondition(T * cols <= capacity)
        for t in 0..<T { lfm_quantize_act_q8(x + t * ld, Int32(cols), q + t * cols, d + t * cols / 32, s + t * cols / 32) }
    }
}

extension Matrix {
    /// y = W x (one vector). `xq` must hold x quantized when the weights are Q8_0/Q4_0.
    func matvec(_ x: UnsafePointer<Float>, _ xq: QuantizedActivations?, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let w = data, t = Int32(type.rawValue), c = Int32(cols)
        let yp = SendablePtr(y), xp = SendablePtr(UnsafeMutablePointer(mutating: x))
        let q = xq.map { (SendablePtr($0.q), SendablePtr($0.d), SendablePtr($0.s)) }
        pool.parallelFor(rows) { b, e in
            lfm_matvec(t, w, c, Int32(b), Int32(e), xp.p, q?.0.p, q?.1.p, q?.2.p, yp.p)
        }
    }

    /// Y[t] = W X[t] for T rows of X (`ldx` floats apart) into Y (`ldy` apart).
    func matmul(_ X: UnsafePointer<Float>, ldx: Int, _ xq: QuantizedActivations?, rows T: Int, into Y: UnsafeMutablePointer<Float>, ldy: Int, pool: WorkerPool) {
        if T == 1 { matvec(X, xq, into: Y, pool: pool); return }
        let w = data, t = Int32(type.rawValue), c = Int32(cols)
        let yp = SendablePtr(Y), xp = SendablePtr(UnsafeMutablePointer(mutating: X))
        let q = xq.map { (SendablePtr($0.q), SendablePtr($0.d), SendablePtr($0.s)) }
        pool.parallelFor(rows) { b, e in
            lfm_matmul(t, w, c, Int32(b), Int32(e), Int32(T), xp.p, Int32(ldx), q?.0.p, q?.1.p, q?.2.p, c, yp.p, Int32(ldy))
        }
    }

    /// One row as floats (embedding lookup).
    func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        lfm_row_to_f32(Int32(type.rawValue), data, Int32(cols), Int32(r), out)
    }
}

/// Elementwise helpers (single-threaded; cheap next to the matrix products).
enum Ops {
    /// RMSNorm with a plain weight: y = w ⊙ x / √(mean(x²) + eps).
    static func rmsNorm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int, eps: Float, into y: UnsafeMutablePointer<Float>) {
        var ss: Float = 0
        for i in 0..<n { ss += x[i] * x[i] }
        let r = 1 / (ss / Float(n) + eps).squareRoot()
        for i in 0..<n { y[i] = w[i] * (x[i] * r) }
    }

    /// y = silu(g) ⊙ u.
    static func swiglu(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int, into y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { let a = g[i]; y[i] = a / (1 + expf(-a)) * u[i] }
    }

    static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { a[i] += b[i] }
    }
}

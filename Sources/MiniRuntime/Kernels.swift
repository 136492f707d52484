import Foundation
import CKernels
import Formats
import Synchronization

/// A raw pointer that may cross threads (the pool's workers read weights and write disjoint outputs).
struct SendablePtr<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// The persistent worker pool (C, `lfm_pool_*`): fork/join over `threads` threads, the caller included. One job
/// runs at a time: callers from several conversations take turns job by job (the C side holds a mutex), so the
/// process never computes on more threads than the pool has.
@_spi(Tools) public final class WorkerPool: @unchecked Sendable {
    // @unchecked: the only state is the C pool, whose job queue is guarded by its own mutex.
    let pool: OpaquePointer
    public let threads: Int
    init(threads: Int) {
        self.threads = max(1, threads)
        pool = lfm_pool_create(Int32(self.threads))
    }
    deinit { lfm_pool_destroy(pool) }

    private static let pools = Mutex<[Int: WorkerPool]>([:])
    /// The process's pool of `threads` threads (made on first use; every model asking for that count shares it).
    public static func shared(threads: Int) -> WorkerPool {
        pools.withLock { p in
            let n = max(1, threads)
            if let existing = p[n] { return existing }
            let made = WorkerPool(threads: n)
            p[n] = made
            return made
        }
    }

    private final class Box { let body: (Int, Int) -> Void; init(_ b: @escaping (Int, Int) -> Void) { body = b } }

    /// Runs body(ith, nth) on every thread and waits.
    func run(_ body: (Int, Int) -> Void) { dispatch(body, solo: false) }

    private func dispatch(_ body: (Int, Int) -> Void, solo: Bool) {
        withoutActuallyEscaping(body) { b in
            let box = Box(b)
            let ctx = Unmanaged.passUnretained(box).toOpaque()
            let fn: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32) -> Void = { ctx, ith, nth in
                Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue().body(Int(ith), Int(nth))
            }
            if solo { lfm_pool_solo(pool, fn, ctx) } else { lfm_pool_run(pool, fn, ctx) }
            withExtendedLifetime(box) {}
        }
    }

    /// Splits [0, n) in pieces aligned to `align` and runs body(begin, end) on each thread's piece.
    public func parallelFor(_ n: Int, align: Int = 4, _ body: (Int, Int) -> Void) {
        if threads == 1 || n <= align {
            dispatch({ _, _ in body(0, n) }, solo: true)
            return
        }
        run { ith, nth in
            let units = (n + align - 1) / align
            let per = (units + nth - 1) / nth
            let b = min(n, ith * per * align), e = min(n, (ith + 1) * per * align)
            if b < e { body(b, e) }
        }
    }

    /// body(i) for every i in 0..<n, the items shared among the threads (run inline when there is one): for the
    /// per-sequence steps of a batched step, where each item touches only its own rows and state.
    func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n == 1 { body(0); return }
        parallelFor(n, align: 1) { b, e in for i in b..<e { body(i) } }
    }
}

/// A weight matrix [rows, cols] read in place from the bundle, in any of the stored types.
struct Matrix: @unchecked Sendable {
    let name: String
    let type: GGMLType
    let data: UnsafeRawPointer
    let rows: Int
    let cols: Int
    /// Whether the active kernel table reads these weights with q8 block activations (Q8_0/Q4_0) or floats.
    var usesQuantizedActivations: Bool { lfm_type_wants_q8(Int32(type.rawValue)) != 0 }
}

/// The input of one or more matrix products: T float rows, `ld` floats apart. Callers only bind the rows; a matrix
/// whose kernels want q8 block activations quantizes them on first use after a bind, once for every matrix that
/// reads the same input (q/k/v, w1/w3).
final class Activations {
    private(set) var x: UnsafePointer<Float>?
    private(set) var rows = 0, cols = 0, ld = 0
    private var quantized = false
    /// The rows are independent inputs (decode steps of several sequences): products run as per-row
    /// matrix-vector products over one read of the weights (`lfm_matvec_batch`), each row bit-equal to its product
    /// alone, instead of the prefill GEMM.
    var independentRows = false
    private var q: UnsafeMutablePointer<Int8>
    private var d: UnsafeMutablePointer<Float>
    private var s: UnsafeMutablePointer<Int32>
    private var capacity: Int
    init(capacity: Int = 1 << 12) {
        self.capacity = max(capacity, 32)
        q = .allocate(capacity: self.capacity); d = .allocate(capacity: self.capacity / 32 + 1);
        s = .allocate(capacity: self.capacity / 32 + 1)
    }
    deinit { q.deallocate(); d.deallocate(); s.deallocate() }

    /// Declares the input rows (no work is done until a matrix reads them).
    func bind(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil) {
        self.x = x; self.rows = rows; self.cols = cols; self.ld = ld ?? cols
        quantized = false
    }

    /// The q8 blocks of the bound rows (rows `cols` bytes / `cols/32` blocks apart), made on first request.
    fileprivate func q8() -> (SendablePtr<Int8>, SendablePtr<Float>, SendablePtr<Int32>) {
        if !quantized {
            reserve()
            quantize(columns: 0, cols)
            quantized = true
        }
        return (SendablePtr(q), SendablePtr(d), SendablePtr(s))
    }

    private func reserve() {
        let n = rows * cols
        if n > capacity {
            q.deallocate(); d.deallocate(); s.deallocate()
            capacity = n
            q = .allocate(capacity: n); d = .allocate(capacity: n / 32 + 1); s = .allocate(capacity: n / 32 + 1)
        }
    }

    /// Declares rows whose q8 blocks the caller makes itself, piece by piece with `quantize(columns:_:)`, before a
    /// matrix reads them (the rows' floats must be final by then).
    func bindQuantizingByPieces(_ x: UnsafePointer<Float>, rows: Int, cols: Int) {
        bind(x, rows: rows, cols: cols)
        reserve()
        quantized = true
    }

    /// The q8 blocks of columns b..<e of every bound row (b a multiple of 32; e too, or `cols`): each block is
    /// quantized on its own, so pieces give the blocks of the whole row. Pieces may run on several threads at once.
    func quantize(columns b: Int, _ e: Int) {
        for t in 0..<rows {
            let o = t * cols + b
            lfm_quantize_act_q8(x! + t * ld + b, Int32(e - b), q + o, d + o / 32, s + o / 32)
        }
    }
}

extension Matrix {
    /// Y[t] = W X[t] for the bound rows of `a` into Y (rows `ldy` floats apart); one row runs as a matrix-vector
    /// product. The kernel table's choice for this weight type decides whether `a` is quantized. The rows of W are
    /// split among the pool's threads in pieces aligned to `align`; `epilogue(b, e)` runs on the thread that made
    /// outputs b..<e of every token, right after them, in the same job.
    func matmul(
        _ a: Activations, into Y: UnsafeMutablePointer<Float>, ldy: Int, pool: WorkerPool, align: Int = 4,
        epilogue: ((Int, Int) -> Void)? = nil
    ) {
        precondition(a.cols == cols, "\(name): input has \(a.cols) columns, the matrix \(cols)")
        if let o = ActivationHook.observer { o.observe(matrix: name, x: a.x!, rows: a.rows, cols: cols, ld: a.ld) }
        let w = data, t = Int32(type.rawValue), c = Int32(cols), T = a.rows, ldx = Int32(a.ld)
        let yp = SendablePtr(Y), xp = SendablePtr(UnsafeMutablePointer(mutating: a.x!))
        let q = usesQuantizedActivations ? a.q8() : nil
        if T == 1 {
            pool.parallelFor(rows, align: align) { b, e in
                lfm_matvec(t, w, c, Int32(b), Int32(e), xp.p, q?.0.p, q?.1.p, q?.2.p, yp.p)
                epilogue?(b, e)
            }
            return
        }
        if a.independentRows && !Self.batchGEMM {
            // one piece per thread: each piece builds its token tables, and on the Zen 5 machine (avx512, and the
            // avx2 tiers forced) up to four pieces per thread taken dynamically cost 2-3 % of a batched round
            // (docs/serving.md)
            pool.parallelFor(rows, align: align) { b, e in
                lfm_matvec_batch(
                    t, w, c, Int32(b), Int32(e), Int32(T), xp.p, ldx, q?.0.p, q?.1.p, q?.2.p, c, yp.p, Int32(ldy))
                epilogue?(b, e)
            }
            return
        }
        pool.parallelFor(rows, align: align) { b, e in
            lfm_matmul(t, w, c, Int32(b), Int32(e), Int32(T), xp.p, ldx, q?.0.p, q?.1.p, q?.2.p, c, yp.p, Int32(ldy))
            epilogue?(b, e)
        }
    }

    /// `LFM_BATCH_GEMM=1`: batched decode rows take the prefill GEMM (faster where the matrix-vector kernels are
    /// compute-bound, but rows are no longer bit-equal to stepping alone).
    static let batchGEMM = ProcessInfo.processInfo.environment["LFM_BATCH_GEMM"] == "1"

    /// y = W x for the one bound row of `a`.
    func matvec(_ a: Activations, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        precondition(a.rows == 1)
        matmul(a, into: y, ldy: rows, pool: pool)
    }

    /// Y[t] = W X[t] for callers without a shared input (convolutions, the inverse DFT): X rows `ldx` floats apart.
    func matmul(
        _ X: UnsafePointer<Float>, ldx: Int, rows T: Int, into Y: UnsafeMutablePointer<Float>, ldy: Int,
        pool: WorkerPool
    ) {
        let a = Activations(capacity: usesQuantizedActivations ? T * cols : 32)
        a.bind(X, rows: T, cols: cols, ld: ldx)
        matmul(a, into: Y, ldy: ldy, pool: pool)
    }

    /// One row as floats (embedding lookup).
    func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        lfm_row_to_f32(Int32(type.rawValue), data, Int32(cols), Int32(r), out)
    }
}

/// Elementwise helpers over the kernel table (single-threaded; cheap next to the matrix products).
enum Ops {
    /// RMSNorm with a plain weight: y = w ⊙ x / √(mean(x²) + eps).
    static func rmsNorm(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int, eps: Float, into y: UnsafeMutablePointer<Float>
    ) {
        lfm_rmsnorm(x, w, Int32(n), eps, y)
    }

    /// y = silu(g) ⊙ u.
    static func swiglu(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
        lfm_silu(g, n)
        for i in 0..<n { g[i] *= u[i] }
    }

    static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
        lfm_axpy(1, b, a, n)
    }
}

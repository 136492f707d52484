import XCTest
import TestSupport
import CKernels
@testable import Formats
@testable import Quantize
@testable import MiniRuntime

/// Every fast kernel against its plain reference version (and against float math on dequantized weights).
final class KernelTests: XCTestCase {
    func makeMatrix(_ type: GGMLType, rows: Int, cols: Int, rng: inout SeededRandom) -> ([UInt8], [Float]) {
        let x = (0..<(rows * cols)).map { _ in Float(rng.unit() * 2 - 1) }
        var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: rows * cols))
        x.withUnsafeBufferPointer { s in bytes.withUnsafeMutableBytes { Codec.encode(s.baseAddress!, count: x.count, as: type, into: $0.baseAddress!) } }
        var deq = [Float](repeating: 0, count: x.count)
        bytes.withUnsafeBytes { b in deq.withUnsafeMutableBufferPointer { Codec.decode(b.baseAddress!, count: x.count, type: type, into: $0.baseAddress!) } }
        return (bytes, deq)
    }

    /// Prefill (T ≥ 8) of Q8_0/Q4_0/BF16 weights runs on bf16 dot products where the CPU has AVX512_BF16: within
    /// bf16 rounding of float math on the dequantized weights.
    func testBF16PrefillPath() throws {
        var rng = SeededRandom(seed: 11)
        let pool = WorkerPool(threads: 2)
        for type in [GGMLType.q8_0, .q4_0, .bf16] {
            for (rows, cols) in [(36, 2048), (8, 64)] {
                let (bytes, deq) = makeMatrix(type, rows: rows, cols: cols, rng: &rng)
                let T = 21
                let X = (0..<(T * cols)).map { _ in Float(rng.unit() * 2 - 1) }
                var Y = [Float](repeating: .nan, count: T * rows)
                try bytes.withUnsafeBytes { wb in
                    let m = Matrix(name: "w", type: type, data: wb.baseAddress!, rows: rows, cols: cols)
                    let act = m.usesQuantizedActivations ? QuantizedActivations(capacity: T * cols) : nil
                    X.withUnsafeBufferPointer { x in
                        act?.set(x.baseAddress!, rows: T, cols: cols, ld: cols)
                        Y.withUnsafeMutableBufferPointer { m.matmul(x.baseAddress!, ldx: cols, act, rows: T, into: $0.baseAddress!, ldy: rows, pool: pool) }
                    }
                }
                var worst = 0.0
                for t in 0..<T { for r in 0..<rows {
                    var s = 0.0
                    for c in 0..<cols { s += Double(deq[r * cols + c]) * Double(X[t * cols + c]) }
                    worst = max(worst, abs(Double(Y[t * rows + r]) - s) / Double(cols).squareRoot())
                } }
                XCTAssertLessThan(worst, 0.01, "\(type) \(rows)x\(cols)")
                XCTAssertFalse(Y.contains { $0.isNaN })
            }
        }
    }

    func testFastKernelsMatchReference() throws {
        var rng = SeededRandom(seed: 7)
        let pool = WorkerPool(threads: 2)
        for type in [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0] {
            for (rows, cols) in [(7, 64), (16, 96), (33, 2048), (4, 32)] {
                let (bytes, deq) = makeMatrix(type, rows: rows, cols: cols, rng: &rng)
                let T = 5
                let X = (0..<(T * cols)).map { _ in Float(rng.unit() * 2 - 1) }
                try bytes.withUnsafeBytes { wb in
                    let m = Matrix(name: "w", type: type, data: wb.baseAddress!, rows: rows, cols: cols)
                    let act = m.usesQuantizedActivations ? QuantizedActivations(capacity: T * cols) : nil
                    var fast = [Float](repeating: .nan, count: T * rows), ref = fast
                    X.withUnsafeBufferPointer { x in
                        act?.set(x.baseAddress!, rows: T, cols: cols, ld: cols)
                        lfm_set_reference_kernels(0)
                        fast.withUnsafeMutableBufferPointer { m.matmul(x.baseAddress!, ldx: cols, act, rows: T, into: $0.baseAddress!, ldy: rows, pool: pool) }
                        lfm_set_reference_kernels(1)
                        ref.withUnsafeMutableBufferPointer { m.matmul(x.baseAddress!, ldx: cols, act, rows: T, into: $0.baseAddress!, ldy: rows, pool: pool) }
                        lfm_set_reference_kernels(0)
                    }
                    // single-vector path too
                    var mv = [Float](repeating: .nan, count: rows)
                    X.withUnsafeBufferPointer { x in
                        act?.set(x.baseAddress!, rows: 1, cols: cols, ld: cols)
                        mv.withUnsafeMutableBufferPointer { m.matvec(x.baseAddress!, act, into: $0.baseAddress!, pool: pool) }
                    }
                    let scale = ref.map(abs).max()! + 1e-6
                    for i in 0..<(T * rows) { XCTAssertEqual(fast[i], ref[i], accuracy: 2e-5 * scale, "\(type) \(rows)x\(cols) [\(i)]") }
                    for r in 0..<rows { XCTAssertEqual(mv[r], ref[r], accuracy: 2e-5 * scale) }
                    // against float math on the dequantized weights (activation quantization error only)
                    for t in 0..<T {
                        for r in 0..<rows {
                            var s: Double = 0
                            for c in 0..<cols { s += Double(deq[r * cols + c]) * Double(X[t * cols + c]) }
                            let tol = m.usesQuantizedActivations ? 0.01 * Double(cols).squareRoot() : 1e-4 * Double(cols).squareRoot()
                            XCTAssertEqual(Double(ref[t * rows + r]), s, accuracy: tol, "\(type) \(rows)x\(cols)")
                        }
                    }
                    _ = try XCTUnwrap(Optional(m))
                }
            }
        }
        XCTAssertEqual(lfm_cpu_has_vnni(), lfm_cpu_has_vnni())
    }

    func testPoolRunsEveryThreadOnce() {
        let pool = WorkerPool(threads: 3)
        for _ in 0..<200 {
            let box = UnsafeMutablePointer<Int>.allocate(capacity: 3); box.initialize(repeating: 0, count: 3)
            let p = SendablePtr(box)
            pool.run { ith, nth in XCTAssertEqual(nth, 3); p.p[ith] += 1 }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: box, count: 3)), [1, 1, 1])
            box.deallocate()
        }
    }
}

final class SamplerTests: XCTestCase {
    func testGreedyIsFirstArgmax() {
        var l: [Float] = [0.5, 2, 2, -1]
        var s = Sampler(.greedy)
        XCTAssertEqual(l.withUnsafeMutableBufferPointer { s.sample($0) }, 1)
        var topk1 = Sampler(SamplingParams(temperature: 0.7, topK: 1, seed: 3))
        XCTAssertEqual(l.withUnsafeMutableBufferPointer { topk1.sample($0) }, 1, "top_k == 1 is greedy in the reference")
    }

    func testTopKKeepsTiesAtTheThreshold() {
        // k = 2 with three equal second values: the reference masks only logits < kth value, so ties survive
        let base: [Float] = [5, 1, 1, 1, -3]
        var seen = Set<Int>()
        var s = Sampler(SamplingParams(temperature: 1, topK: 2, seed: 11))
        for _ in 0..<2000 { var l = base; seen.insert(l.withUnsafeMutableBufferPointer { s.sample($0) }) }
        XCTAssertEqual(seen, [0, 1, 2, 3])
    }

    func testSeedMakesRunsReproducible() {
        func run(_ seed: UInt64) -> [Int] {
            var s = Sampler(SamplingParams(temperature: 1.0, topK: 50, topP: 0.9, seed: seed))
            var rng = SeededRandom(seed: 99)
            return (0..<50).map { _ in
                var l = (0..<100).map { _ in Float(rng.unit() * 4) }
                return l.withUnsafeMutableBufferPointer { s.sample($0) }
            }
        }
        XCTAssertEqual(run(5), run(5))
        XCTAssertNotEqual(run(5), run(6))
    }

    func testDistributionFollowsSoftmax() {
        let base: [Float] = [log(0.7), log(0.2), log(0.1)]
        var s = Sampler(SamplingParams(temperature: 1, seed: 1))
        var counts = [0, 0, 0]
        let n = 20000
        for _ in 0..<n { var l = base; counts[l.withUnsafeMutableBufferPointer { s.sample($0) }] += 1 }
        XCTAssertEqual(Double(counts[0]) / Double(n), 0.7, accuracy: 0.02)
        XCTAssertEqual(Double(counts[2]) / Double(n), 0.1, accuracy: 0.015)
    }

    func testRepetitionPenaltyAndTopP() {
        var l: [Float] = [3, 2.9, -5]
        var s = Sampler(SamplingParams(temperature: 1e-3, repetitionPenalty: 2, seed: 1))
        XCTAssertEqual(l.withUnsafeMutableBufferPointer { s.sample($0, history: [0]) }, 1)
        var p = Sampler(SamplingParams(temperature: 1, topP: 0.5, seed: 2))
        for _ in 0..<200 { var m: [Float] = [2, 0, 0]; XCTAssertEqual(m.withUnsafeMutableBufferPointer { p.sample($0) }, 0) }
    }
}

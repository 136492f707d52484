import XCTest
import TestSupport
import CKernels
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// Every fast kernel against its plain reference version (and against float math on dequantized weights).
final class KernelTests: XCTestCase {
    func makeMatrix(_ type: GGMLType, rows: Int, cols: Int, rng: inout SeededRandom) -> ([UInt8], [Float]) {
        let x = (0..<(rows * cols)).map { _ in Float(rng.unit() * 2 - 1) }
        var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: rows * cols))
        x.withUnsafeBufferPointer { s in
            bytes.withUnsafeMutableBytes {
                Codec.encode(s.baseAddress!, count: x.count, as: type, into: $0.baseAddress!)
            }
        }
        var deq = [Float](repeating: 0, count: x.count)
        bytes.withUnsafeBytes { b in
            deq.withUnsafeMutableBufferPointer {
                Codec.decode(b.baseAddress!, count: x.count, type: type, into: $0.baseAddress!)
            }
        }
        return (bytes, deq)
    }

    /// Every tier below the scalar reference that this CPU can run (x86: avx2, avx2-vnni, avx512; ARM64: neon,
    /// neon-dotprod, neon-i8mm).
    static var vectorTiers: [Int32] {
        (1..<Int32(LFM_TIER_COUNT)).filter { lfm_tier_supported($0) != 0 }
    }

    /// Runs `body` with each tier active, restoring the previous one.
    func forEachTier(_ tiers: [Int32], _ body: (Int32) throws -> Void) rethrows {
        let saved = lfm_tier()
        defer { _ = lfm_set_tier(saved) }
        for t in tiers { XCTAssertEqual(lfm_set_tier(t), 0); try body(t) }
    }

    func product(_ m: Matrix, _ X: [Float], T: Int, pool: WorkerPool) -> [Float] {
        var Y = [Float](repeating: .nan, count: T * m.rows)
        let act = Activations()
        X.withUnsafeBufferPointer { x in
            act.bind(x.baseAddress!, rows: T, cols: m.cols)
            Y.withUnsafeMutableBufferPointer { m.matmul(act, into: $0.baseAddress!, ldy: m.rows, pool: pool) }
        }
        return Y
    }

    /// Prefill (T ≥ 8) of Q8_0/Q4_0/BF16 weights runs on bf16 dot products where the CPU has AVX512_BF16, int8 or
    /// float tiles elsewhere: on every tier within bf16 rounding of float math on the dequantized weights.
    func testPrefillPathsAgainstFloatMath() throws {
        var rng = SeededRandom(seed: 11)
        let pool = WorkerPool(threads: 2)
        try forEachTier([Int32(LFM_TIER_SCALAR)] + Self.vectorTiers) { tier in
            for type in [GGMLType.q8_0, .q4_0, .bf16] {
                for (rows, cols) in [(36, 2048), (8, 64)] {
                    let (bytes, deq) = makeMatrix(type, rows: rows, cols: cols, rng: &rng)
                    let T = 21
                    let X = (0..<(T * cols)).map { _ in Float(rng.unit() * 2 - 1) }
                    let Y = bytes.withUnsafeBytes { wb in
                        product(
                            Matrix(name: "w", type: type, data: wb.baseAddress!, rows: rows, cols: cols), X, T: T,
                            pool: pool)
                    }
                    var worst = 0.0
                    for t in 0..<T {
                        for r in 0..<rows {
                            var s = 0.0
                            for c in 0..<cols { s += Double(deq[r * cols + c]) * Double(X[t * cols + c]) }
                            worst = max(worst, abs(Double(Y[t * rows + r]) - s) / Double(cols).squareRoot())
                        }
                    }
                    XCTAssertLessThan(worst, 0.01, "\(String(cString: lfm_tier_name(tier))) \(type) \(rows)x\(cols)")
                    XCTAssertFalse(Y.contains { $0.isNaN })
                }
            }
        }
    }

    /// Each vector tier against the scalar tier (the reference path), through the Swift dispatch: matrix products
    /// (prefill and decode) for every weight type, and the row/elementwise kernels.
    func testEveryTierMatchesTheReference() throws {
        XCTAssertFalse(Self.vectorTiers.isEmpty, "this CPU runs no vector tier: every mode would be on scalar code")
        var rng = SeededRandom(seed: 7)
        let pool = WorkerPool(threads: 2)
        for type in [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0, .q3_K, .q4_K, .q5_K, .q6_K] {
            let shapes =
                type.isKQuant ? [(7, 256), (16, 768), (33, 2048), (4, 512)] : [(7, 64), (16, 96), (33, 2048), (4, 32)]
            for (rows, cols) in shapes {
                let (bytes, deq) = makeMatrix(type, rows: rows, cols: cols, rng: &rng)
                let T = 5
                let X = (0..<(T * cols)).map { _ in Float(rng.unit() * 2 - 1) }
                try bytes.withUnsafeBytes { wb in
                    let m = Matrix(name: "w", type: type, data: wb.baseAddress!, rows: rows, cols: cols)
                    lfm_set_reference_kernels(1)
                    let ref = product(m, X, T: T, pool: pool), ref1 = product(m, X, T: 1, pool: pool)
                    lfm_set_reference_kernels(0)
                    let scale = ref.map(abs).max()! + 1e-6
                    try forEachTier(Self.vectorTiers) { tier in
                        let name = String(cString: lfm_tier_name(tier))
                        let bf16Prefill = tier == LFM_TIER_AVX512 && lfm_cpu_has_avx512bf16() != 0 && T >= 8
                        let fast = product(m, X, T: T, pool: pool), mv = product(m, X, T: 1, pool: pool)
                        for i in 0..<(T * rows) {
                            XCTAssertEqual(
                                fast[i], ref[i], accuracy: (bf16Prefill ? 1e-2 : 2e-6) * scale,
                                "\(name) \(type) \(rows)x\(cols) [\(i)]")
                        }
                        for r in 0..<rows {
                            XCTAssertEqual(mv[r], ref1[r], accuracy: 2e-6 * scale, "\(name) \(type) matvec")
                        }
                    }
                    // the reference against float math on the dequantized weights (activation quantization error only)
                    for t in 0..<T {
                        for r in 0..<rows {
                            var s: Double = 0
                            for c in 0..<cols { s += Double(deq[r * cols + c]) * Double(X[t * cols + c]) }
                            let tol =
                                m.usesQuantizedActivations
                                ? 0.01 * Double(cols).squareRoot() : 1e-4 * Double(cols).squareRoot()
                            XCTAssertEqual(Double(ref[t * rows + r]), s, accuracy: tol, "\(type) \(rows)x\(cols)")
                        }
                    }
                }
            }
        }
        // elementwise kernels
        let n = 1003
        let x = (0..<n).map { _ in Float(rng.unit() * 12 - 6) }, g = (0..<n).map { _ in Float(rng.unit() * 12 - 6) }
        let w = (0..<n).map { _ in Float(rng.unit() * 2 - 1) }, b = (0..<n).map { _ in Float(rng.unit() * 2 - 1) }
        func run() -> [[Float]] {
            var outs: [[Float]] = []
            var y = x; lfm_silu(&y, n); outs.append(y)
            y = x; lfm_gelu_erf(&y, n); outs.append(y)
            y = x; lfm_elu(x, &y, n); outs.append(y)
            y = x; lfm_glu(x, g, n, &y); outs.append(y)
            y = x; lfm_softmax(&y, Int32(n)); outs.append(y)
            y = x; lfm_layernorm(x, w, b, Int32(n), 1e-5, &y); outs.append(y)
            y = x; lfm_rmsnorm(x, w, Int32(n), 1e-5, &y); outs.append(y)
            var kv = [Float](repeating: 0, count: 64 * 40), sc = [Float](repeating: 0, count: 40),
                o = [Float](repeating: 0, count: 64)
            for i in kv.indices { kv[i] = x[i % n] / 6 }
            lfm_attend(g, 64, kv, kv, 64, 40, 0.125, &sc, &o); outs.append(o)
            return outs
        }
        lfm_set_reference_kernels(1)
        let ref = run()
        lfm_set_reference_kernels(0)
        let names = ["silu", "gelu", "elu", "glu", "softmax", "layernorm", "rmsnorm", "attend"]
        forEachTier(Self.vectorTiers) { tier in
            let got = run()
            for (k, name) in names.enumerated() {
                let err = zip(got[k], ref[k]).map { Double(abs($0 - $1)) / max(1, Double(abs($1))) }.max()!
                XCTAssertLessThan(err, 1e-6, "\(String(cString: lfm_tier_name(tier))) \(name)")
            }
        }
    }

    /// Tier selection: names round-trip, an unsupported tier is refused, and no kernel of the best tier is left on
    /// scalar code.
    func testTierTable() {
        for t in 0..<Int32(LFM_TIER_COUNT) { XCTAssertEqual(lfm_tier_from_name(lfm_tier_name(t)), t) }
        XCTAssertEqual(lfm_tier_from_name("AVX2"), Int32(LFM_TIER_AVX2))
        XCTAssertEqual(lfm_tier_from_name("sse9"), -1)
        #if arch(x86_64)
        XCTAssertEqual(lfm_tier_supported(Int32(LFM_TIER_NEON)), 0)
        XCTAssertEqual(lfm_set_tier(Int32(LFM_TIER_NEON)), -1)
        #else
        XCTAssertEqual(lfm_set_tier(Int32(LFM_TIER_AVX2)), -1)
        #endif
        let saved = lfm_tier()
        defer { _ = lfm_set_tier(saved) }
        XCTAssertEqual(lfm_set_tier(lfm_best_tier()), 0)
        let left = (0..<lfm_kernel_count()).filter { lfm_kernel_tier($0) == LFM_TIER_SCALAR }.map {
            String(cString: lfm_kernel_name($0))
        }
        XCTAssertEqual(left, [], "kernels still on scalar code at the best tier")
        XCTAssertEqual(KernelTier.report().tier, String(cString: lfm_tier_name(lfm_best_tier())))
    }

    /// The C driver (Tests/KernelCheck) compiled and run natively: every kernel of every tier here.
    func testCKernelDriver() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/cc") else {
            throw XCTSkip("no C compiler at /usr/bin/cc")
        }
        let exe = FileManager.default.temporaryDirectory.appendingPathComponent("lfm-kernel-check-\(getpid())")
        defer { try? FileManager.default.removeItem(at: exe) }
        let sources = try FileManager.default.contentsOfDirectory(atPath: root.path + "/Sources/CKernels").filter {
            $0.hasSuffix(".c")
        }
        .map { root.path + "/Sources/CKernels/" + $0 }
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        cc.arguments =
            ["-O2", "-I", root.path + "/Sources/CKernels/include"] + sources
            + [root.path + "/Tests/KernelCheck/kernel_check.c", "-lm", "-lpthread", "-o", exe.path]
        try cc.run(); cc.waitUntilExit()
        XCTAssertEqual(cc.terminationStatus, 0, "kernel_check.c did not compile")
        let run = try runProcess(exe.path, [])
        let out = run.out
        XCTAssertEqual(run.status, 0, out + run.err)
        XCTAssertTrue(out.contains("0 failure(s)"), out)
    }

    func testPoolRunsEveryThreadOnce() {
        let pool = WorkerPool(threads: 3)
        for _ in 0..<200 {
            let box = UnsafeMutablePointer<Int>.allocate(capacity: 3); box.initialize(repeating: 0, count: 3)
            let p = SendablePtr(box)
            pool.run { ith, nth in
                XCTAssertEqual(nth, 3); p.p[ith] += 1
            }
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
        XCTAssertEqual(
            l.withUnsafeMutableBufferPointer { topk1.sample($0) }, 1, "top_k == 1 is greedy in the reference")
    }

    func testTopKKeepsTiesAtTheThreshold() {
        // k = 2 with three equal second values: the reference masks only logits < kth value, so ties survive
        let base: [Float] = [5, 1, 1, 1, -3]
        var seen = Set<Int>()
        var s = Sampler(SamplingParams(temperature: 1, topK: 2, seed: 11))
        for _ in 0..<2000 { var l = base; seen.insert(l.withUnsafeMutableBufferPointer { s.sample($0) }) }
        XCTAssertEqual(seen, [0, 1, 2, 3])
    }

    func testKthLargestMatchesASort() {
        var rng = SeededRandom(seed: 7)
        for k in [1, 2, 4, 50, 64, 65, 300] {
            // coarse values (many ties), -inf entries, and a run shorter than k of finite values
            var x = (0..<2049).map { _ in Float(Int(rng.unit() * 40)) - 20 }
            for i in stride(from: 0, to: x.count, by: 7) { x[i] = -.infinity }
            let got = x.withUnsafeBufferPointer { Sampler.kthLargest($0, k) }
            XCTAssertEqual(got, x.sorted(by: >)[k - 1], "k = \(k)")
        }
        let few: [Float] = [3, -.infinity, -.infinity, -.infinity]
        XCTAssertEqual(few.withUnsafeBufferPointer { Sampler.kthLargest($0, 3) }, -.infinity)
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
        for _ in 0..<200 {
            var m: [Float] = [2, 0, 0]; XCTAssertEqual(m.withUnsafeMutableBufferPointer { p.sample($0) }, 0)
        }
    }
}

/// The task presets carry the reference's prompts and audio sampling defaults.
final class TaskPresetTests: XCTestCase {
    func testReferenceDefaults() {
        XCTAssertEqual(TaskPreset.tts(.usFemale).system, "Perform TTS. Use the US female voice.")
        XCTAssertEqual(TaskPreset.tts(.ukMale).mode, .sequential)
        XCTAssertEqual(TaskPreset.chat.system, "Respond with interleaved text and audio.")
        XCTAssertEqual(TaskPreset.chat.mode, .interleaved)
        XCTAssertEqual(TaskPreset.asr.system, "Perform ASR.")
        XCTAssertEqual(
            TaskPreset.tts(.usMale).audioSampling(seed: 3), SamplingParams(temperature: 0.8, topK: 64, seed: 3))
        XCTAssertEqual(TaskPreset.chat.audioSampling(seed: 3), SamplingParams(temperature: 1.0, topK: 4, seed: 3))
        XCTAssertEqual(
            TaskPreset.chat.audioSampling(temperature: 0.5, seed: 3), SamplingParams(temperature: 0.5, topK: 4, seed: 3)
        )
        XCTAssertEqual(TaskPreset.tts(.ukFemale).audioSampling(seed: 9, greedy: true), SamplingParams(seed: 9))
        XCTAssertEqual(Voice.allCases.map(\.rawValue), ["us-male", "us-female", "uk-male", "uk-female"])
    }
}

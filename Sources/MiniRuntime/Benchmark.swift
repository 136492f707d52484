import Foundation
import CKernels
import Formats

/// Measurements for benchmarks (not timed tests): llama-bench-style prefill/decode throughput and the machine's
/// read bandwidth, so throughput can be put against the memory-bandwidth bound.
public enum Benchmark {
    public struct Result: Sendable {
        public var prefillTokensPerSecond: [Double] = []
        public var decodeTokensPerSecond: [Double] = []
        public var weightBytesPerToken = 0
    }

    /// `pp`: prefill of `promptTokens` random tokens (as llama-bench's ppN); `tg`: `genTokens` single-token
    /// decode steps after a 1-token prompt (as tgN). Each repeated `repeats` times on a fresh cache.
    public static func run(_ model: LFMModel, promptTokens: Int, genTokens: Int, repeats: Int) throws -> Result {
        var r = Result()
        let bb = model.backbone
        let h = bb.hidden
        var rng = SeededRandom(seed: 42)
        r.weightBytesPerToken = model.bundle.gguf.tensors.filter { $0.name.hasPrefix("lfm.") }.reduce(0) { $0 + $1.byteCount }
        var last = [Float](repeating: 0, count: h)
        var logits = [Float](repeating: 0, count: bb.vocab)
        for _ in 0..<repeats {
            if promptTokens > 0 {
                bb.reset()
                let ids = (0..<promptTokens).map { _ in Int(rng.next() % UInt64(bb.vocab)) }
                let t0 = Date()
                try bb.forward(tokens: ids, last: &last)
                bb.logits(last, into: &logits)
                r.prefillTokensPerSecond.append(Double(promptTokens) / Date().timeIntervalSince(t0))
            }
            if genTokens > 0 {
                bb.reset()
                var id = 1
                let t0 = Date()
                for _ in 0..<genTokens {
                    try bb.forward(tokens: [id], last: &last)
                    bb.logits(last, into: &logits)
                    id = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                }
                r.decodeTokensPerSecond.append(Double(genTokens) / Date().timeIntervalSince(t0))
            }
        }
        return r
    }

    /// Read bandwidth in bytes/s over a `bytes`-sized buffer with `threads` threads (median of `repeats`).
    public static func readBandwidth(bytes: Int = 1 << 30, threads: Int, repeats: Int = 5) -> Double {
        let n = bytes / 4
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { buf.deallocate() }
        for i in stride(from: 0, to: n, by: 1024) { buf[i] = 1 }   // touch every page
        buf.initialize(repeating: 1, count: n)
        let pool = WorkerPool(threads: threads)
        let p = SendablePtr(buf)
        var rates: [Double] = []
        for _ in 0..<repeats {
            let t0 = Date()
            pool.parallelFor(n, align: 4096) { b, e in _ = lfm_sum_f32(p.p + b, e - b) }
            rates.append(Double(bytes) / Date().timeIntervalSince(t0))
        }
        return rates.sorted()[rates.count / 2]
    }
}

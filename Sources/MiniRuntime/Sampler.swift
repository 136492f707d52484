import Foundation

/// Sampling settings. Defaults are the reference's: text greedy (no temperature), top-k off.
public struct SamplingParams: Sendable, Equatable {
    public var temperature: Float?
    public var topK: Int?
    /// Extra (off by default): nucleus sampling after top-k.
    public var topP: Float?
    /// Extra (off by default): HF-style repetition penalty over the tokens generated so far.
    public var repetitionPenalty: Float?
    public var seed: UInt64
    public init(
        temperature: Float? = nil, topK: Int? = nil, topP: Float? = nil, repetitionPenalty: Float? = nil,
        seed: UInt64 = 0
    ) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.repetitionPenalty = repetitionPenalty;
        self.seed = seed
    }
    public static let greedy = SamplingParams()
    /// The reference's rule: greedy when temperature is absent or ≤ 0, or top_k == 1.
    public var isGreedy: Bool { temperature == nil || temperature! <= 0 || topK == 1 }
}

/// xoshiro256** seeded by SplitMix64: reproducible streams for `--seed`.
@_spi(Tools) public struct SeededRandom: RandomNumberGenerator, Sendable {
    var s: (UInt64, UInt64, UInt64, UInt64)
    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15; var z = x; z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9;
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB; return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }
    public mutating func next() -> UInt64 {
        let r = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t; s.3 = (s.3 << 45) | (s.3 >> 19)
        return r
    }
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// Picks the next id from logits with the reference's semantics.
@_spi(Tools) public struct Sampler: Sendable {
    public var params: SamplingParams
    var rng: SeededRandom
    public init(_ p: SamplingParams) { params = p; rng = SeededRandom(seed: p.seed) }

    /// First index of the maximum (torch.argmax).
    public static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<x.count where x[i] > x[best] { best = i }
        return best
    }

    /// The k-th largest value, as `x.sorted(by: >)[k - 1]`: the k largest seen so far kept in order (a full sort
    /// past 64).
    static func kthLargest(_ x: UnsafeBufferPointer<Float>, _ k: Int) -> Float {
        if k > 64 { return Array(x).sorted(by: >)[k - 1] }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { top in
            top.initialize(repeating: -.infinity)
            for v in x where v > top[k - 1] {
                var i = k - 1
                while i > 0 && top[i - 1] < v { top[i] = top[i - 1]; i -= 1 }
                top[i] = v
            }
            return top[k - 1]
        }
    }

    public mutating func sample(_ logits: UnsafeMutableBufferPointer<Float>, history: [Int] = []) -> Int {
        if let rp = params.repetitionPenalty, rp != 1 {
            for id in Set(history) where id < logits.count {
                logits[id] = logits[id] > 0 ? logits[id] / rp : logits[id] * rp
            }
        }
        if params.isGreedy { return Self.argmax(UnsafeBufferPointer(logits)) }
        let t = params.temperature!
        for i in 0..<logits.count { logits[i] /= t }
        var keep = Array(0..<logits.count)
        if let k = params.topK, k > 0, k < logits.count {
            // torch.topk(k).values[-1] is the k-th largest; everything below it goes (ties at it survive)
            let kth = Self.kthLargest(UnsafeBufferPointer(logits), k)
            keep = keep.filter { logits[$0] >= kth }
        }
        let mx = keep.map { logits[$0] }.max() ?? 0
        var probs = keep.map { Double(expf(logits[$0] - mx)) }
        var total = probs.reduce(0, +)
        if let p = params.topP, p > 0, p < 1 {
            let order = probs.indices.sorted { probs[$0] > probs[$1] }
            var acc = 0.0, cut = order.count
            for (n, i) in order.enumerated() { acc += probs[i] / total; if acc >= Double(p) { cut = n + 1; break } }
            let kept = Set(order.prefix(cut))
            for i in probs.indices where !kept.contains(i) { probs[i] = 0 }
            total = probs.reduce(0, +)
        }
        var u = rng.unit() * total
        for (i, pr) in probs.enumerated() { u -= pr; if u < 0 { return keep[i] } }
        return keep[probs.lastIndex { $0 > 0 } ?? 0]
    }
}

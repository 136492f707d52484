import Foundation

/// Band-limited resampling identical to `torchaudio.functional.resample` with its defaults (sinc interpolation
/// with a Hann window, lowpass width 6, rolloff 0.99), which the reference applies to every input clip
/// (`torchaudio.functional.resample`, called by liquid_audio/processor.py `ChatState.add_audio`). The kernel has
/// `new/g` phases of 2W + orig/g taps; output length ceil(new·N / orig).
@_spi(Tools) public struct Resampler: Sendable {
    public let from: Int, to: Int
    let o: Int, n: Int, width: Int
    let kernel: [[Float]]  // [n phases][2W + o taps]

    public init(from: Int, to: Int, lowpassWidth: Int = 6, rolloff: Double = 0.99) throws {
        guard from > 0, to > 0 else {
            throw RuntimeError.badInput("resample: rates must be positive (\(from) → \(to))")
        }
        self.from = from; self.to = to
        var a = from, b = to
        while b != 0 { (a, b) = (b, a % b) }
        o = from / a; n = to / a
        guard o <= 100_000, n <= 100_000 else {
            throw RuntimeError.badInput("resample: \(from) → \(to) Hz has too large a ratio")
        }
        let base = Double(min(o, n)) * rolloff
        width = Int((Double(lowpassWidth) * Double(o) / base).rounded(.up))
        let taps = 2 * width + o, lw = Double(lowpassWidth), w = width, oo = o, nn = n
        kernel = (0..<nn).map { j in
            (0..<taps).map { k in
                // in float32 as torchaudio computes it for float32 input
                var t = (Float(-j) / Float(nn) + Float(k - w) / Float(oo)) * Float(base)
                t = min(max(t, Float(-lw)), Float(lw))
                let window = powf(cosf(t * Float.pi / Float(lw) / 2), 2)
                let tp = t * Float.pi
                let s: Float = tp == 0 ? 1 : sinf(tp) / tp
                return s * (window * Float(base / Double(oo)))
            }
        }
    }

    public func process(_ x: [Float]) -> [Float] {
        if from == to { return x }
        let N = x.count
        let outLen = Int((Double(n) * Double(N) / Double(o)).rounded(.up))
        let frames = N / o + 1  // conv1d output length over the padded signal: (N + 2W + o − taps) / o + 1
        var y = [Float](repeating: 0, count: max(outLen, 0))
        let taps = 2 * width + o
        x.withUnsafeBufferPointer { xs in
            for m in 0..<frames {
                let start = m * o - width  // index into x of tap 0
                for j in 0..<n {
                    let idx = m * n + j
                    if idx >= outLen { return }
                    var acc: Float = 0
                    let kr = kernel[j]
                    let k0 = max(0, -start), k1 = min(taps, N - start)
                    if k0 < k1 { for k in k0..<k1 { acc += xs[start + k] * kr[k] } }
                    y[idx] = acc
                }
            }
        }
        return y
    }
}

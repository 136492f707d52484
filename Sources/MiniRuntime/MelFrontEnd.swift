import Foundation
import Formats

/// The reference's log-mel front end (NeMo `FilterbankFeatures` as configured by liquid-audio:
/// liquid_audio/model/conformer/processor.py, `FilterbankFeatures`):
/// pre-emphasis 0.97, |STFT|² with a symmetric Hann of 400 centred in 512 (hop 160, centre zero padding),
/// 128 Slaney mel bands over 0–8 kHz, ln(x + 2⁻²⁴), per-feature normalisation over the floor(N/160) valid frames
/// (ddof 1, std + 1e-5), invalid frames zeroed. All T = floor(N/160) + 1 frames are returned (the encoder is fed
/// all of them). Computed in double precision, returned as float32, feature-major [128][T].
@_spi(Tools) public struct MelFrontEnd: Sendable {
    public let config: PreprocessorConfig
    public let nFFT: Int, hop: Int, winLength: Int, nMels: Int
    /// [nMels][nFFT/2 + 1], float32 values (as the reference stores the filterbank).
    let filterbank: [[Double]]
    let window: [Double]  // nFFT long, the window centred, zeros elsewhere
    let fft: FFT

    public init(config: PreprocessorConfig = PreprocessorConfig()) throws {
        self.config = config
        guard config.normalize == "per_feature", config.window == "hann", config.log, config.frameSplicing == 1,
            config.padTo == 0
        else {
            throw RuntimeError.badInput(
                """
                preprocessor: only per_feature normalisation, hann window, log, frame_splicing 1 and pad_to 0 are \
                supported
                """
            )
        }
        nFFT = config.nFFT
        hop = Int((config.windowStride * Double(config.sampleRate)).rounded())
        winLength = Int(config.windowSize * Double(config.sampleRate))
        nMels = config.features
        guard nFFT.nonzeroBitCount == 1, nFFT >= winLength, hop > 0, nMels > 0 else {
            throw RuntimeError.badInput(
                "preprocessor: n_fft \(nFFT), window \(winLength), hop \(hop) are not supported")
        }
        // symmetric Hann (torch.hann_window(periodic=False)) centred in the FFT frame
        var w = [Double](repeating: 0, count: nFFT)
        let off = (nFFT - winLength) / 2
        for i in 0..<winLength {
            w[off + i] = Float(0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(winLength - 1))).asDouble
        }
        window = w
        filterbank = MelFrontEnd.slaneyFilterbank(
            sampleRate: Double(config.sampleRate), nFFT: nFFT, nMels: nMels, fMin: 0,
            fMax: Double(config.sampleRate) / 2)
        fft = FFT(n: nFFT)
    }

    static func hzToMel(_ f: Double) -> Double {
        let fsp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fsp, logstep = log(6.4) / 27
        return f >= minLogHz ? minLogMel + log(f / minLogHz) / logstep : f / fsp
    }
    static func melToHz(_ m: Double) -> Double {
        let fsp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fsp, logstep = log(6.4) / 27
        return m >= minLogMel ? minLogHz * exp(logstep * (m - minLogMel)) : fsp * m
    }

    /// librosa.filters.mel(norm="slaney", htk=False), rounded to float32 like the reference.
    static func slaneyFilterbank(sampleRate: Double, nFFT: Int, nMels: Int, fMin: Double, fMax: Double) -> [[Double]] {
        let nBins = nFFT / 2 + 1
        let lo = hzToMel(fMin), hi = hzToMel(fMax)
        let melF = (0..<(nMels + 2)).map { melToHz(lo + (hi - lo) * Double($0) / Double(nMels + 1)) }
        let freqs = (0..<nBins).map { Double($0) * sampleRate / Double(nFFT) }
        return (0..<nMels).map { i in
            let enorm = 2.0 / (melF[i + 2] - melF[i])
            return freqs.map { f in
                let lower = (f - melF[i]) / (melF[i + 1] - melF[i])
                let upper = (melF[i + 2] - f) / (melF[i + 2] - melF[i + 1])
                return Float(max(0, min(lower, upper)) * enorm).asDouble
            }
        }
    }

    /// Frames fed to the encoder for `n` samples.
    public func frameCount(samples n: Int) -> Int { n / hop + 1 }

    /// Log-mel features of 16 kHz mono samples: [nMels][T] and the number of valid frames.
    public func features(_ x: [Float]) -> (mel: [[Float]], valid: Int) {
        let n = x.count
        let T = n / hop + 1, valid = n / hop
        // pre-emphasis on the raw samples
        var y = [Double](repeating: 0, count: n)
        for i in 0..<n { y[i] = i == 0 ? Double(x[0]) : Double(x[i]) - 0.97 * Double(x[i - 1]) }
        let pad = nFFT / 2, nBins = nFFT / 2 + 1
        var logmel = [[Double]](repeating: [Double](repeating: 0, count: T), count: nMels)
        var re = [Double](repeating: 0, count: nFFT), im = [Double](repeating: 0, count: nFFT)
        var power = [Double](repeating: 0, count: nBins)
        let guardValue = pow(2.0, -24.0)
        for t in 0..<T {
            for k in 0..<nFFT {
                let idx = t * hop + k - pad
                re[k] = (idx >= 0 && idx < n ? y[idx] : 0) * window[k]
                im[k] = 0
            }
            fft.transform(&re, &im)
            for k in 0..<nBins { power[k] = re[k] * re[k] + im[k] * im[k] }
            for m in 0..<nMels {
                var s = 0.0
                let fb = filterbank[m]
                for k in 0..<nBins where fb[k] != 0 { s += fb[k] * power[k] }
                logmel[m][t] = log(s + guardValue)
            }
        }
        var out = [[Float]](repeating: [Float](repeating: 0, count: T), count: nMels)
        for m in 0..<nMels {
            guard valid > 0 else { break }
            let row = logmel[m]
            var mean = 0.0
            for t in 0..<valid { mean += row[t] }
            mean /= Double(valid)
            var v = 0.0
            for t in 0..<valid { v += (row[t] - mean) * (row[t] - mean) }
            let std = (valid > 1 ? (v / Double(valid - 1)).squareRoot() : 0) + 1e-5
            for t in 0..<valid { out[m][t] = Float((row[t] - mean) / std) }
        }
        return (out, valid)
    }
}

extension Float { var asDouble: Double { Double(self) } }

/// In-place iterative radix-2 complex FFT (double precision).
struct FFT: Sendable {
    let n: Int
    let cosT: [Double], sinT: [Double]
    let rev: [Int]
    init(n: Int) {
        self.n = n
        cosT = (0..<(n / 2)).map { cos(-2 * Double.pi * Double($0) / Double(n)) }
        sinT = (0..<(n / 2)).map { sin(-2 * Double.pi * Double($0) / Double(n)) }
        let bits = n.trailingZeroBitCount
        rev = (0..<n).map { i in
            var r = 0, v = i
            for _ in 0..<bits { r = (r << 1) | (v & 1); v >>= 1 }
            return r
        }
    }
    func transform(_ re: inout [Double], _ im: inout [Double]) {
        for i in 0..<n where i < rev[i] { re.swapAt(i, rev[i]); im.swapAt(i, rev[i]) }
        var size = 2
        while size <= n {
            let half = size / 2, step = n / size
            var start = 0
            while start < n {
                for k in 0..<half {
                    let c = cosT[k * step], s = sinT[k * step]
                    let a = start + k, b = a + half
                    let tr = re[b] * c - im[b] * s, ti = re[b] * s + im[b] * c
                    re[b] = re[a] - tr; im[b] = im[a] - ti
                    re[a] += tr; im[a] += ti
                }
                start += size
            }
            size *= 2
        }
    }
}

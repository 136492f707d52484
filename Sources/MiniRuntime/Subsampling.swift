import Foundation
import Formats
import CKernels

/// FastConformer `dw_striding` subsampling (liquid_audio/model/conformer/subsampling.py, `ConvSubsampling`): a 3×3
/// stride-2 conv from 1 to C channels over the
/// (time, frequency) image, then per further stage a depthwise 3×3 stride-2 conv and a pointwise conv, ReLU after
/// the first conv and after every pointwise conv, flattened as feature c·F + f into `out` (C·F → d_model).
/// Activations are kept channel-last ([t][f][c]) so that the depthwise convs vectorise over channels and the
/// pointwise convs are matrix products. Checkpoint names: `conformer.pre_encode.*`.
final class Subsampling: Sendable {
    let channels: Int, stages: Int, featIn: Int, dModel: Int
    /// conv.0 kernel as [9][C] (tap-major) and bias.
    let conv0: [Float], conv0Bias: [Float]
    /// Per stage ≥ 1: depthwise kernel [9][C] and bias, pointwise conv as a matrix.
    let depthwise: [[Float]], depthwiseBias: [[Float]]
    let pointwise: [Linear]
    let out: Linear

    init(_ L: TensorLoader, config e: ConformerConfig) throws {
        let p = "conformer.pre_encode."
        channels = e.subsamplingConvChannels; stages = e.subsamplingStages; featIn = e.featIn; dModel = e.dModel
        let C = channels
        func tapMajor(_ w: [Float]) -> [Float] {  // [C][1][3][3] → [9][C]
            var t = [Float](repeating: 0, count: 9 * C)
            for c in 0..<C { for k in 0..<9 { t[k * C + c] = w[c * 9 + k] } }
            return t
        }
        conv0 = tapMajor(try L.floats(p + "conv.0.weight", shape: [C, 1, 3, 3]))
        conv0Bias = try L.floats(p + "conv.0.bias", shape: [C])
        var dw: [[Float]] = [], dwb: [[Float]] = [], pw: [Linear] = []
        for s in 1..<stages {
            let d = 2 + 3 * (s - 1)
            dw.append(tapMajor(try L.floats(p + "conv.\(d).weight", shape: [C, 1, 3, 3])))
            dwb.append(try L.floats(p + "conv.\(d).bias", shape: [C]))
            pw.append(try Linear(L, p + "conv.\(d + 1)", out: C, in: C))
        }
        depthwise = dw; depthwiseBias = dwb; pointwise = pw
        out = try Linear(L, p + "out", out: dModel, in: C * e.subsampledFeatures)
    }

    static func half(_ n: Int) -> Int { (n + 1) / 2 }  // conv k3 s2 p1: ceil(n/2)

    /// A 3×3, stride-2, pad-1 conv over a channel-last [T][F][inChannels] image into [ceil(T/2)][ceil(F/2)][C]:
    /// a full conv from one input channel (inChannels 1) or a depthwise conv (inChannels C). Weights [9][C] tap-major.
    static func conv3x3s2(
        _ x: [Float], T: Int, F: Int, inChannels ci: Int, channels C: Int, weights: [Float], bias: [Float],
        relu: Bool, pool: WorkerPool
    ) -> [Float] {
        let T2 = half(T), F2 = half(F)
        var out = [Float](repeating: 0, count: T2 * F2 * C)
        out.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { xb in
                weights.withUnsafeBufferPointer { w in
                    bias.withUnsafeBufferPointer { b in
                        let O = SendablePtr(o.baseAddress!),
                            X = SendablePtr(UnsafeMutablePointer(mutating: xb.baseAddress!))
                        let W = SendablePtr(UnsafeMutablePointer(mutating: w.baseAddress!)),
                            B = SendablePtr(UnsafeMutablePointer(mutating: b.baseAddress!))
                        pool.parallelFor(T2, align: 1) { t0, t1 in
                            for t in t0..<t1 {
                                for f in 0..<F2 {
                                    let y = O.p + (t * F2 + f) * C
                                    y.update(from: B.p, count: C)
                                    for i in 0..<3 {
                                        let ti = 2 * t + i - 1; if ti < 0 || ti >= T { continue }
                                        for j in 0..<3 {
                                            let fj = 2 * f + j - 1; if fj < 0 || fj >= F { continue }
                                            let xr = X.p + (ti * F + fj) * ci, wk = W.p + (i * 3 + j) * C
                                            if ci == 1 {
                                                let xv = xr[0]; for c in 0..<C { y[c] += wk[c] * xv }
                                            } else {
                                                for c in 0..<C { y[c] += wk[c] * xr[c] }
                                            }
                                        }
                                    }
                                    if relu { for c in 0..<C { y[c] = max(y[c], 0) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Output frames for `frames` mel frames: ceil applied per stage (= ceil(L / 2^stages)).
    func outputLength(_ frames: Int) -> Int { var t = frames; for _ in 0..<stages { t = Self.half(t) }; return t }

    /// mel: [featIn][L] feature-major. Returns [T'][d_model].
    func forward(mel: [[Float]], act: Activations, pool: WorkerPool) -> [Float] {
        let C = channels, L = mel.first?.count ?? 0
        var T = Self.half(L), F = Self.half(featIn)
        // Stage 0: conv 1→C, stride 2, pad 1 (the mel image has one channel), ReLU.
        var melT = [Float](repeating: 0, count: L * featIn)  // [t][f]
        for f in 0..<featIn { for t in 0..<L { melT[t * featIn + f] = mel[f][t] } }
        var cur = Self.conv3x3s2(
            melT, T: L, F: featIn, inChannels: 1, channels: C, weights: conv0, bias: conv0Bias, relu: true, pool: pool)
        // Further stages: depthwise 3×3 s2 (per channel), pointwise C→C, ReLU.
        for s in 0..<(stages - 1) {
            let T2 = Self.half(T), F2 = Self.half(F)
            let nxt = Self.conv3x3s2(
                cur, T: T, F: F, inChannels: C, channels: C, weights: depthwise[s], bias: depthwiseBias[s], relu: false,
                pool: pool)
            // pointwise conv as a matrix product over every (t, f) position, then ReLU
            cur = [Float](repeating: 0, count: T2 * F2 * C)
            nxt.withUnsafeBufferPointer { x in
                cur.withUnsafeMutableBufferPointer { y in
                    pointwise[s](x.baseAddress!, rows: T2 * F2, into: y.baseAddress!, act: act, pool: pool)
                    lfm_relu(y.baseAddress!, y.count)
                }
            }
            T = T2; F = F2
        }
        // Flatten [t][f][c] → [t][c·F + f], then the output projection.
        var flat = [Float](repeating: 0, count: T * C * F)
        for t in 0..<T { for f in 0..<F { for c in 0..<C { flat[t * C * F + c * F + f] = cur[(t * F + f) * C + c] } } }
        var y = [Float](repeating: 0, count: T * dModel)
        flat.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { o in
                out(x.baseAddress!, rows: T, into: o.baseAddress!, act: act, pool: pool)
            }
        }
        return y
    }
}

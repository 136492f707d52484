import XCTest
import TestSupport
import Foundation
import CKernels
@testable import Formats
@testable import Quantize

final class QuantizeTests: XCTestCase {
    /// Q8_0 / Q4_0 / F16 / BF16 bytes equal the `gguf` package's quantizer (goldens made by
    /// scripts/reference/quant_goldens.py) on fixture tensors and edge cases.
    func testByteIdenticalToGGUFPackage() throws {
        let g = try SafetensorsFile(path: fixtures + "/quant/quant_goldens.safetensors")
        let inputs = g.names.filter { $0.hasSuffix(".input") }
        XCTAssertGreaterThanOrEqual(inputs.count, 10)
        var compared = 0
        for inName in inputs {
            let base = String(inName.dropLast(".input".count))
            let x = g.tensors[inName]!
            let n = x.elementCount
            let src = Array(x.bytes.bindMemory(to: Float.self))
            for (tag, type) in [("q8_0", GGMLType.q8_0), ("q4_0", .q4_0), ("f16", .f16), ("bf16", .bf16)] {
                let want = try XCTUnwrap(g.tensors["\(base).\(tag)"])
                var got = [UInt8](repeating: 0, count: type.byteCount(elements: n))
                src.withUnsafeBufferPointer { s in
                    got.withUnsafeMutableBytes {
                        Codec.encode(s.baseAddress!, count: n, as: type, into: $0.baseAddress!)
                    }
                }
                XCTAssertEqual(got, Array(want.bytes), "\(base) \(tag)")
                compared += 1
            }
        }
        XCTAssertEqual(compared, inputs.count * 4)
    }

    func roundTrip(_ x: [Float], _ type: GGMLType) -> [Float] {
        var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: x.count))
        x.withUnsafeBufferPointer { s in
            bytes.withUnsafeMutableBytes {
                Codec.encode(s.baseAddress!, count: x.count, as: type, into: $0.baseAddress!)
            }
        }
        var y = [Float](repeating: .nan, count: x.count)
        bytes.withUnsafeBytes { b in
            y.withUnsafeMutableBufferPointer {
                Codec.decode(b.baseAddress!, count: x.count, type: type, into: $0.baseAddress!)
            }
        }
        return y
    }

    func testRoundTripsEveryType() {
        var rng = SystemRandomNumberGenerator()
        let x = (0..<4096).map { _ in Float.random(in: -2...2, using: &rng) }
        XCTAssertEqual(roundTrip(x, .f32), x)
        // exactly representable inputs survive F16 / BF16 unchanged
        let h = x.map { lfm_f16_to_f32(lfm_f32_to_f16($0)) }
        XCTAssertEqual(roundTrip(h, .f16), h)
        let b = x.map { lfm_bf16_to_f32(lfm_f32_to_bf16($0)) }
        XCTAssertEqual(roundTrip(b, .bf16), b)
        // block quantizers: Q8_0 is within half a step of its block's scale; Q4_0 (asymmetric, the value
        // opposite the block's extreme is clipped to +7 steps) within one step
        for (type, levels, steps) in [(GGMLType.q8_0, Float(127), Float(0.5)), (.q4_0, Float(8), Float(1))] {
            let y = roundTrip(x, type)
            for blk in 0..<(x.count / 32) {
                let r = (blk * 32)..<(blk * 32 + 32)
                let amax = x[r].map(abs).max()!
                let step = amax / levels
                for i in r {
                    XCTAssertLessThanOrEqual(abs(x[i] - y[i]), step * steps + amax * 2e-3 + 1e-7, "\(type) \(i)")
                }
            }
        }
        XCTAssertEqual(roundTrip([Float](repeating: 0, count: 64), .q4_0), [Float](repeating: 0, count: 64))
    }

    func testHalfConversionEdgeCases() {
        XCTAssertEqual(lfm_f32_to_f16(65504), 0x7bff)
        XCTAssertEqual(lfm_f32_to_f16(65520), 0x7c00)  // rounds to infinity
        XCTAssertEqual(lfm_f32_to_f16(5.9604645e-08), 0x0001)  // smallest subnormal
        XCTAssertEqual(lfm_f32_to_f16(2.9802322e-08), 0x0000)  // half of it: tie to even → 0
        XCTAssertEqual(lfm_f32_to_f16(-0.0), 0x8000)
        XCTAssertTrue(lfm_f16_to_f32(lfm_f32_to_f16(.nan)).isNaN)
        XCTAssertEqual(lfm_f32_to_bf16(1.00390625), 0x3f80)  // tie rounds to even
        XCTAssertEqual(lfm_f32_to_bf16(1.01171875), 0x3f82)
        for bits in stride(from: UInt16(0), to: 0x7c00, by: 7) {
            XCTAssertEqual(lfm_f32_to_f16(lfm_f16_to_f32(bits)), bits)
        }
    }

    func testOverridesAndPresetRules() throws {
        let o = try TypeOverride(parsing: "lfm.layers.*.feed_forward.w2.weight=f16")
        XCTAssertTrue(o.matches("lfm.layers.3.feed_forward.w2.weight"))
        XCTAssertFalse(o.matches("lfm.layers.3.feed_forward.w1.weight"))
        XCTAssertThrowsError(try TypeOverride(parsing: "x=q5_1"))
        XCTAssertEqual(try TypeOverride(parsing: "x=q5_k").type, .q5_K)
        XCTAssertThrowsError(try TypeOverride(parsing: "noequals"))
        let r = Recipe(preset: .q4_0, overrides: [o])
        XCTAssertEqual(
            r.type(
                name: "lfm.layers.3.feed_forward.w2.weight", shape: [64, 192], role: .matrix, component: .backbone,
                sourceIsFloat: true
            ).0, .f16)
        XCTAssertEqual(
            r.type(
                name: "lfm.layers.3.feed_forward.w1.weight", shape: [192, 64], role: .matrix, component: .backbone,
                sourceIsFloat: true
            ).0, .q4_0)
        XCTAssertEqual(
            r.type(
                name: "lfm.embed_tokens.weight", shape: [512, 64], role: .embedding, component: .backbone,
                sourceIsFloat: true
            ).0, .q8_0)
        XCTAssertEqual(
            r.type(name: "x.norm", shape: [64], role: .vector, component: .backbone, sourceIsFloat: true).0, .f32)
        // rows that are not a multiple of 32 keep a float type
        XCTAssertEqual(
            r.type(name: "m", shape: [10, 48], role: .matrix, component: .backbone, sourceIsFloat: true).0, .f16)
    }

    /// Q4_K / Q5_K / Q6_K bytes equal llama.cpp's: golden super-blocks that `llama-quantize` wrote for the full-size
    /// checkpoint's exported backbone (Q4_K_M, Q5_K_M, Q6_K mixes), and edge cases through ggml's
    /// `quantize_row_q*_K_ref` (made by the parity script beside the vendored llama.cpp, docs/format.md §6).
    func testKQuantsByteIdenticalToLlamaCpp() throws {
        let g = try SafetensorsFile(path: fixtures + "/quant/kquant_goldens.safetensors")
        let inputs = g.names.filter { $0.hasSuffix(".input") }
        var seen: [GGMLType: Int] = [:]
        let saved = lfm_tier()
        defer { _ = lfm_set_tier(saved) }
        let tiers = (0..<Int32(LFM_TIER_COUNT)).filter { lfm_tier_supported($0) != 0 }
        for inName in inputs {
            let base = String(inName.dropLast(".input".count))
            let type = try XCTUnwrap(GGMLType(name: String(base.prefix { $0 != "." })))
            let x = Array(g.tensors[inName]!.bytes.bindMemory(to: Float.self))
            let want = Array(try XCTUnwrap(g.tensors[base + ".bytes"]).bytes)
            // every copy of the quantizer this CPU can run (they follow the kernel tier)
            for tier in tiers {
                XCTAssertEqual(lfm_set_tier(tier), 0)
                var got = [UInt8](repeating: 0xAA, count: type.byteCount(elements: x.count))
                XCTAssertEqual(got.count, want.count, base)
                x.withUnsafeBufferPointer { s in
                    got.withUnsafeMutableBytes {
                        Codec.encode(s.baseAddress!, count: x.count, as: type, into: $0.baseAddress!)
                    }
                }
                XCTAssertEqual(got, want, "\(base) (\(String(cString: lfm_tier_name(tier))))")
            }
            seen[type, default: 0] += 1
        }
        for t in [GGMLType.q3_K, .q4_K, .q5_K, .q6_K] { XCTAssertGreaterThanOrEqual(seen[t] ?? 0, 9, "\(t) goldens") }
    }

    /// K-quant dequantization equals the `gguf` package's (`gguf.quants.dequantize` of the llama.cpp blocks above,
    /// stored beside them as `.gguf_dequant`) and round trips stay within the super-block's step.
    func testKQuantDequantizeEqualsGGUFPackage() throws {
        let g = try SafetensorsFile(path: fixtures + "/quant/kquant_goldens.safetensors")
        var compared = 0
        for name in g.names where name.hasSuffix(".bytes") {
            let base = String(name.dropLast(".bytes".count))
            guard let ref = g.tensors[base + ".gguf_dequant"] else { continue }
            let type = try XCTUnwrap(GGMLType(name: String(base.prefix { $0 != "." })))
            let want = Array(ref.bytes.bindMemory(to: Float.self))
            var got = [Float](repeating: .nan, count: want.count)
            let bytes = Array(g.tensors[name]!.bytes)
            bytes.withUnsafeBytes { b in
                got.withUnsafeMutableBufferPointer {
                    Codec.decode(b.baseAddress!, count: want.count, type: type, into: $0.baseAddress!)
                }
            }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), base)
            compared += 1
        }
        XCTAssertGreaterThanOrEqual(compared, 37)
        var rng = SystemRandomNumberGenerator()
        let x = (0..<2048).map { _ in Float.random(in: -2...2, using: &rng) }
        // levels over each super-block's range: Q3_K ±4, Q4_K 15, Q5_K 31, Q6_K ±32; a value is within about one step
        for (type, levels) in [(GGMLType.q3_K, Float(7)), (.q4_K, 15), (.q5_K, 31), (.q6_K, 63)] {
            let y = roundTrip(x, type)
            for blk in 0..<(x.count / 256) {
                let r = (blk * 256)..<(blk * 256 + 256)
                let step = (x[r].max()! - min(0, x[r].min()!)) / levels
                for i in r { XCTAssertLessThanOrEqual(abs(x[i] - y[i]), 1.5 * step, "\(type) \(i)") }
            }
        }
        XCTAssertEqual(roundTrip([Float](repeating: 0, count: 256), .q6_K), [Float](repeating: 0, count: 256))
    }

    /// llama.cpp's Q4_K_M / Q5_K_M / Q6_K rules on a 16-layer LFM2 backbone with attention at 2, 5, 8, 10, 12, 14.
    func testKQuantMixRules() {
        var r = Recipe(preset: .q4_k_m)
        r.backboneLayers = (0..<16).map { [2, 5, 8, 10, 12, 14].contains($0) ? "full_attention" : "conv" }
        func ty(
            _ name: String, _ shape: [Int] = [2048, 2048], role: TensorRole = .matrix, c: Component = .backbone
        )
            -> GGMLType
        { r.type(name: name, shape: shape, role: role, component: c, sourceIsFloat: true).0 }
        XCTAssertEqual(ty("lfm.embed_tokens.weight", role: .embedding), .q6_K)
        // ffn_down: use_more_bits(i, 16) = {0, 1, 4, 7, 10, 13, 14, 15}
        let down = (0..<16).filter { ty("lfm.layers.\($0).feed_forward.w2.weight") == .q6_K }
        XCTAssertEqual(down, [0, 1, 4, 7, 10, 13, 14, 15])
        XCTAssertEqual(ty("lfm.layers.2.feed_forward.w2.weight"), .q4_K)
        XCTAssertEqual(ty("lfm.layers.0.feed_forward.w1.weight"), .q4_K)
        // attn_v over the six attention layers: use_more_bits(i, 6) = {2, 5} → layers 8 and 14
        let v = [2, 5, 8, 10, 12, 14].filter { ty("lfm.layers.\($0).self_attn.v_proj.weight") == .q6_K }
        XCTAssertEqual(v, [8, 14])
        XCTAssertEqual(ty("lfm.layers.8.self_attn.q_proj.weight"), .q4_K)
        XCTAssertEqual(ty("lfm.layers.3.conv.in_proj.weight"), .q4_K)
        // rows that are not a multiple of 256 fall back to Q8_0 (then to a float type below 32)
        XCTAssertEqual(ty("lfm.layers.3.conv.in_proj.weight", [64, 96]), .q8_0)
        XCTAssertEqual(ty("lfm.layers.3.conv.in_proj.weight", [64, 48]), .f16)
        XCTAssertEqual(ty("conformer.layers.0.feed_forward1.linear1.weight", c: .conformer), .q8_0)
        XCTAssertEqual(ty("depthformer.layers.0.attn.qkv_proj.weight", c: .depthformer), .q4_K)
        XCTAssertEqual(ty("depth_embeddings.0.embedding.weight", role: .embedding, c: .depthformer), .q6_K)
        // the audio components by their measured error (docs/format.md §6): Mimi and the audio embeddings Q6_K,
        // the adapter and the detokenizer Q8_0 like the conformer
        XCTAssertEqual(ty("mimi.decoder_transformer.layers.0.self_attn.in_proj.weight", [1536, 512], c: .mimi), .q6_K)
        XCTAssertEqual(ty("audio_embedding.embedding.weight", role: .embedding, c: .audioEmbedding), .q6_K)
        XCTAssertEqual(ty("audio_adapter.model.1.weight", c: .adapter), .q8_0)
        XCTAssertEqual(ty("detokenizer.lfm.layers.0.feed_forward.w1.weight", [2304, 512], c: .detokenizer), .q8_0)
        r.preset = .q5_k_m
        XCTAssertEqual(ty("lfm.layers.2.feed_forward.w2.weight"), .q5_K)
        XCTAssertEqual(ty("lfm.layers.15.feed_forward.w2.weight"), .q6_K)
        r.preset = .q6_k
        XCTAssertEqual(ty("lfm.layers.2.feed_forward.w2.weight"), .q6_K)
        XCTAssertEqual(ty("lfm.layers.8.self_attn.v_proj.weight"), .q6_K)
        XCTAssertEqual(Preset.q4_k_m.llamaFileType, 15)
        // Q3_K_M: attn_v Q5_K on the first two attention layers then Q4_K, ffn_down Q5_K on layer 0 (16 / 16) then
        // Q4_K, attn_output Q4_K, the rest Q3_K; the tied embedding Q6_K
        r.preset = .q3_k_m
        XCTAssertEqual(ty("lfm.embed_tokens.weight", role: .embedding), .q6_K)
        XCTAssertEqual(
            (0..<16).map { ty("lfm.layers.\($0).feed_forward.w2.weight") }, [.q5_K] + Array(repeating: .q4_K, count: 15)
        )
        XCTAssertEqual(
            [2, 5, 8, 10, 12, 14].map { ty("lfm.layers.\($0).self_attn.v_proj.weight") },
            [.q5_K, .q5_K, .q4_K, .q4_K, .q4_K, .q4_K])
        XCTAssertEqual(ty("lfm.layers.8.self_attn.out_proj.weight"), .q4_K)
        XCTAssertEqual(ty("lfm.layers.8.self_attn.q_proj.weight"), .q3_K)
        XCTAssertEqual(ty("lfm.layers.3.conv.out_proj.weight"), .q3_K)
        XCTAssertEqual(ty("lfm.layers.0.feed_forward.w1.weight"), .q3_K)
        XCTAssertEqual(Preset.q3_k_m.llamaFileType, 12)
        XCTAssertEqual(try TypeOverride(parsing: "x=q3_k").type, .q3_K)
    }
}

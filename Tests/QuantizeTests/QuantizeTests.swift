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
        XCTAssertThrowsError(try TypeOverride(parsing: "x=q5_k"))
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
}

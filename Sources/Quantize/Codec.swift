import Foundation
import CKernels
import Formats

/// Conversions between source element types, float32 and the bundle's ggml types.
public enum Codec {
    /// Reads `count` elements starting at element `start` of a safetensors tensor as float32.
    public static func readFloats(_ t: SafetensorsTensor, start: Int, count: Int, into dst: UnsafeMutablePointer<Float>)
    {
        let base = t.bytes.baseAddress!
        switch t.dtype {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: base + start * 4, byteCount: count * 4)
        case .bf16:
            lfm_convert_bf16_to_f32((base + start * 2).assumingMemoryBound(to: UInt16.self), dst, count)
        case .f16:
            lfm_convert_f16_to_f32((base + start * 2).assumingMemoryBound(to: UInt16.self), dst, count)
        case .f64:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 8, as: Double.self)) }
        case .i64:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 8, as: Int64.self)) }
        case .i32:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 4, as: Int32.self)) }
        case .i16:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 2, as: Int16.self)) }
        case .i8:
            for i in 0..<count { dst[i] = Float(base.load(fromByteOffset: start + i, as: Int8.self)) }
        case .u8, .bool:
            for i in 0..<count { dst[i] = Float(base.load(fromByteOffset: start + i, as: UInt8.self)) }
        case .u16:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 2, as: UInt16.self)) }
        case .u32:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 4, as: UInt32.self)) }
        case .u64:
            for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: (start + i) * 8, as: UInt64.self)) }
        case .f8e4m3, .f8e5m2:
            for i in 0..<count { dst[i] = .nan }
        }
    }

    /// Encodes `count` floats into `type` (count a multiple of the block size).
    public static func encode(
        _ src: UnsafePointer<Float>, count: Int, as type: GGMLType, into dst: UnsafeMutableRawPointer
    ) {
        switch type {
        case .f32: dst.copyMemory(from: src, byteCount: count * 4)
        case .f16: lfm_convert_f32_to_f16(src, dst.assumingMemoryBound(to: UInt16.self), count)
        case .bf16: lfm_convert_f32_to_bf16(src, dst.assumingMemoryBound(to: UInt16.self), count)
        case .q8_0: lfm_quantize_q8_0(src, dst.assumingMemoryBound(to: UInt8.self), count)
        case .q4_0: lfm_quantize_q4_0(src, dst.assumingMemoryBound(to: UInt8.self), count)
        case .q3_K: lfm_quantize_q3_k(src, dst.assumingMemoryBound(to: UInt8.self), count)
        case .q4_K: lfm_quantize_q4_k(src, dst.assumingMemoryBound(to: UInt8.self), count)
        case .q5_K: lfm_quantize_q5_k(src, dst.assumingMemoryBound(to: UInt8.self), count)
        case .q6_K: lfm_quantize_q6_k(src, dst.assumingMemoryBound(to: UInt8.self), count)
        case .f64: for i in 0..<count { dst.storeBytes(of: Double(src[i]), toByteOffset: i * 8, as: Double.self) }
        case .i8: for i in 0..<count { dst.storeBytes(of: Int8(src[i]), toByteOffset: i, as: Int8.self) }
        case .i16: for i in 0..<count { dst.storeBytes(of: Int16(src[i]), toByteOffset: i * 2, as: Int16.self) }
        case .i32: for i in 0..<count { dst.storeBytes(of: Int32(src[i]), toByteOffset: i * 4, as: Int32.self) }
        case .i64: for i in 0..<count { dst.storeBytes(of: Int64(src[i]), toByteOffset: i * 8, as: Int64.self) }
        }
    }

    /// Encodes whole rows of `weights.count` floats with the importance-weighted quantizer of `type` (ggml's
    /// weighted search, CKernels kquant_weighted.c); types without one (Q8_0, the float types) and widths that are
    /// not a whole number of blocks use `encode`.
    public static func encode(
        _ src: UnsafePointer<Float>, count: Int, as type: GGMLType, weights: [Float], into dst: UnsafeMutableRawPointer
    ) {
        let n = weights.count
        precondition(n > 0 && count % n == 0, "weighted encode: \(count) values are not whole rows of \(n)")
        let done = weights.withUnsafeBufferPointer { w in
            lfm_quantize_rows_weighted(
                Int32(type.rawValue), src, dst.assumingMemoryBound(to: UInt8.self), Int64(count / n), Int64(n),
                w.baseAddress!)
        }
        if done == 0 { encode(src, count: count, as: type, into: dst) }
    }

    /// Whether `type` has an importance-weighted quantizer (Q4_0 and the K-quants; ggml has none for Q8_0).
    public static func hasWeightedQuantizer(_ type: GGMLType) -> Bool {
        lfm_type_has_weighted_quantizer(Int32(type.rawValue)) != 0
    }

    /// Decodes `count` elements of `type` into floats.
    public static func decode(
        _ src: UnsafeRawPointer, count: Int, type: GGMLType, into dst: UnsafeMutablePointer<Float>
    ) {
        switch type {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16: lfm_convert_f16_to_f32(src.assumingMemoryBound(to: UInt16.self), dst, count)
        case .bf16: lfm_convert_bf16_to_f32(src.assumingMemoryBound(to: UInt16.self), dst, count)
        case .q8_0: lfm_dequantize_q8_0(src.assumingMemoryBound(to: UInt8.self), dst, count)
        case .q4_0: lfm_dequantize_q4_0(src.assumingMemoryBound(to: UInt8.self), dst, count)
        case .q3_K: lfm_dequantize_q3_k(src.assumingMemoryBound(to: UInt8.self), dst, count)
        case .q4_K: lfm_dequantize_q4_k(src.assumingMemoryBound(to: UInt8.self), dst, count)
        case .q5_K: lfm_dequantize_q5_k(src.assumingMemoryBound(to: UInt8.self), dst, count)
        case .q6_K: lfm_dequantize_q6_k(src.assumingMemoryBound(to: UInt8.self), dst, count)
        case .f64: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case .i8: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .i16: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
        case .i32: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
        case .i64: for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
        }
    }

    /// The ggml type that holds a source dtype without any conversion, if there is one.
    public static func identicalType(_ d: SafetensorsDType) -> GGMLType? {
        switch d {
        case .f32: return .f32;
        case .f16: return .f16;
        case .bf16: return .bf16;
        case .f64: return .f64
        case .i64: return .i64;
        case .i32: return .i32;
        case .i16: return .i16;
        case .i8: return .i8
        default: return nil
        }
    }
}

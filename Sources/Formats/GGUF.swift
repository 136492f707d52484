import Foundation

/// ggml tensor types used by bundles (ids and block layouts are ggml's; no private ids).
public enum GGMLType: UInt32, Sendable, CaseIterable, Codable {
    case f32 = 0, f16 = 1, q4_0 = 2, q8_0 = 8, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, i8 = 24, i16 = 25,
        i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    public var name: String {
        switch self {
        case .f32: return "F32";
        case .f16: return "F16";
        case .bf16: return "BF16"
        case .q8_0: return "Q8_0";
        case .q4_0: return "Q4_0"
        case .q3_K: return "Q3_K";
        case .q4_K: return "Q4_K";
        case .q5_K: return "Q5_K";
        case .q6_K: return "Q6_K"
        case .i8: return "I8";
        case .i16: return "I16";
        case .i32: return "I32";
        case .i64: return "I64";
        case .f64: return "F64"
        }
    }
    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .q4_0, .q8_0: return 32
        case .q3_K, .q4_K, .q5_K, .q6_K: return 256
        default: return 1
        }
    }
    /// ggml's K-quants (256-element super-blocks).
    public var isKQuant: Bool { blockSize == 256 }
    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q8_0: return 34
        case .q4_0: return 18
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        }
    }
    public var isQuantized: Bool { blockSize > 1 }
    public var isFloat: Bool { [.f32, .f16, .bf16, .f64].contains(self) || isQuantized }
    /// Bytes for `count` elements (count a multiple of the block size).
    public func byteCount(elements count: Int) -> Int { count / blockSize * blockBytes }
}

/// GGUF metadata value types.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8
    case array = 9, uint64 = 10, int64 = 11, float64 = 12
    var scalarSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }
}

/// A GGUF metadata value.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float)
    case bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8;
        case .int8: return .int8;
        case .uint16: return .uint16;
        case .int16: return .int16
        case .uint32: return .uint32;
        case .int32: return .int32;
        case .float32: return .float32;
        case .bool: return .bool
        case .string: return .string;
        case .uint64: return .uint64;
        case .int64: return .int64;
        case .float64: return .float64
        case .array: return .array
        }
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v);
        case .int8(let v): return Int(v);
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v);
        case .uint32(let v): return Int(v);
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil;
        case .int64(let v): return Int(v)
        default: return nil
        }
    }
    public var arrayValue: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }
    public var stringArray: [String]? { arrayValue?.compactMap(\.stringValue) }

    public static func strings(_ s: [String]) -> GGUFValue { .array(.string, s.map { .string($0) }) }
    public static func uint32s(_ v: [UInt32]) -> GGUFValue { .array(.uint32, v.map { .uint32($0) }) }
    public static func uint64s(_ v: [UInt64]) -> GGUFValue { .array(.uint64, v.map { .uint64($0) }) }

    func serialize(into out: inout Data) {
        func put<T: FixedWidthInteger>(_ v: T) {
            var le = v.littleEndian; withUnsafeBytes(of: &le) { out.append(contentsOf: $0) }
        }
        switch self {
        case .uint8(let v): put(v);
        case .int8(let v): put(v);
        case .uint16(let v): put(v);
        case .int16(let v): put(v)
        case .uint32(let v): put(v);
        case .int32(let v): put(v);
        case .float32(let v): put(v.bitPattern)
        case .bool(let v): put(UInt8(v ? 1 : 0));
        case .uint64(let v): put(v);
        case .int64(let v): put(v)
        case .float64(let v): put(v.bitPattern)
        case .string(let s): GGUF.putString(s, into: &out)
        case .array(let t, let items):
            put(t.rawValue); put(UInt64(items.count))
            for i in items { i.serialize(into: &out) }
        }
    }
}

/// One tensor's entry in a GGUF header. `dims` are ggml's order (ne0 = innermost = PyTorch's last).
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    public var dims: [Int]
    public var type: GGMLType
    /// Offset relative to the start of the data section.
    public var offset: Int
    public init(name: String, dims: [Int], type: GGMLType, offset: Int = 0) {
        self.name = name; self.dims = dims; self.type = type; self.offset = offset
    }
    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) }
    /// PyTorch-order shape.
    public var shape: [Int] { dims.reversed() }
}

public enum GGUF {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    public static let version: UInt32 = 3
    /// Alignment bundles are written with (recorded in general.alignment).
    public static let defaultAlignment = 64
    /// GGUF's alignment when a file has no general.alignment key.
    public static let specAlignment = 32

    static func putString(_ s: String, into out: inout Data) {
        let b = Array(s.utf8)
        var n = UInt64(b.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: b)
    }

    static func align(_ x: Int, _ a: Int) -> Int { (x + a - 1) / a * a }

    /// Serializes a header (magic … tensor infos) without the padding to the data section.
    public static func header(metadata: [(String, GGUFValue)], tensors: [GGUFTensorInfo]) -> Data {
        var out = Data()
        func put<T: FixedWidthInteger>(_ v: T) {
            var le = v.littleEndian; withUnsafeBytes(of: &le) { out.append(contentsOf: $0) }
        }
        put(magic); put(version); put(UInt64(tensors.count)); put(UInt64(metadata.count))
        for (k, v) in metadata {
            putString(k, into: &out); put(v.type.rawValue); v.serialize(into: &out)
        }
        for t in tensors {
            putString(t.name, into: &out)
            put(UInt32(t.dims.count))
            for d in t.dims { put(UInt64(d)) }
            put(t.type.rawValue)
            put(UInt64(t.offset))
        }
        return out
    }

    /// Lays out tensors: assigns aligned offsets; returns the data-section size.
    public static func layout(_ tensors: inout [GGUFTensorInfo], alignment: Int) -> Int {
        var off = 0
        for i in tensors.indices {
            off = align(off, alignment)
            tensors[i].offset = off
            off += tensors[i].byteCount
        }
        return align(off, alignment)
    }
}

/// A GGUF file mapped read-only, with its header validated: every size is bounded by the file before
/// anything is allocated, tensor ranges lie inside the data section, are aligned and do not overlap.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let tensorIndex: [String: Int]
    public let alignment: Int
    public let dataOffset: Int
    /// End of the tensor-info table (the header proper; padding to the alignment follows).
    public let headerEnd: Int

    public convenience init(path: String) throws { try self.init(file: MappedFile(path: path)) }

    public init(file: MappedFile) throws {
        self.file = file
        path = file.path
        var r = Reader(file: file)
        guard file.size >= 24 else {
            throw FormatsError.truncated(file: path, detail: "\(file.size) bytes is too small for a GGUF header")
        }
        let magic: UInt32 = try r.int()
        guard magic == GGUF.magic else {
            throw FormatsError.badHeader(file: path, detail: "not a GGUF file (bad magic)")
        }
        version = try r.int()
        guard version == 2 || version == 3 else {
            throw FormatsError.badHeader(file: path, detail: "GGUF version \(version) is not supported (2 or 3)")
        }
        let nTensors: UInt64 = try r.int()
        let nKV: UInt64 = try r.int()
        // Every tensor info needs ≥ 24 bytes and every KV ≥ 13: bound the counts by the file size first.
        guard nTensors <= UInt64(file.size / 24), nKV <= UInt64(file.size / 13) else {
            throw FormatsError.badHeader(
                file: path,
                detail: "counts (\(nTensors) tensors, \(nKV) keys) are impossible for a \(file.size)-byte file")
        }
        var meta: [String: GGUFValue] = [:]
        var keys: [String] = []
        for _ in 0..<nKV {
            let k = try r.string()
            let t: UInt32 = try r.int()
            let v = try r.value(type: t, depth: 0, key: k)
            guard meta[k] == nil else {
                throw FormatsError.badHeader(file: path, detail: "duplicate metadata key '\(k)'")
            }
            meta[k] = v
            keys.append(k)
        }
        var align = GGUF.specAlignment
        if let a = meta["general.alignment"] {
            guard case .uint32(let v) = a, v > 0, v.nonzeroBitCount == 1, v <= 1 << 20 else {
                throw FormatsError.badHeader(file: path, detail: "general.alignment \(a) is not a power of two")
            }
            align = Int(v)
        }
        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for _ in 0..<nTensors {
            let name = try r.string()
            let nd: UInt32 = try r.int()
            guard nd >= 1, nd <= 4 else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "\(nd) dimensions (1…4 allowed)")
            }
            var dims: [Int] = []
            var count = 1
            for _ in 0..<nd {
                let d: UInt64 = try r.int()
                guard d >= 1, d <= UInt64(file.size) * 2 else {
                    throw FormatsError.badTensor(file: path, tensor: name, detail: "dimension \(d) is out of range")
                }
                let (m, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, m <= file.size * 2 else {
                    throw FormatsError.badTensor(file: path, tensor: name, detail: "shape is larger than the file")
                }
                count = m
                dims.append(Int(d))
            }
            let traw: UInt32 = try r.int()
            guard let type = GGMLType(rawValue: traw) else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "unknown ggml type id \(traw)")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw FormatsError.badTensor(
                    file: path, tensor: name,
                    detail: "row length \(dims[0]) is not a multiple of the \(type.name) block (\(type.blockSize))")
            }
            let off: UInt64 = try r.int()
            guard off <= UInt64(file.size), Int(off) % align == 0 else {
                throw FormatsError.badTensor(
                    file: path, tensor: name, detail: "data offset \(off) is out of range or not aligned to \(align)")
            }
            guard index[name] == nil else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "duplicate tensor name")
            }
            index[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(off)))
        }
        let dataOff = GGUF.align(r.pos, align)
        guard dataOff <= file.size else {
            throw FormatsError.truncated(file: path, detail: "the data section starts past the end of the file")
        }
        let dataSize = file.size - dataOff
        var ranges = infos.map { ($0.offset, $0.offset + $0.byteCount, $0.name) }
        for (b, e, n) in ranges where e > dataSize {
            throw FormatsError.truncated(
                file: path, detail: "tensor '\(n)' needs bytes \(b)..<\(e) of the data section, which has \(dataSize)")
        }
        ranges.sort { $0.0 < $1.0 }
        for i in ranges.indices.dropFirst() where ranges[i].0 < ranges[i - 1].1 {
            throw FormatsError.badTensor(
                file: path, tensor: ranges[i].2, detail: "data overlaps tensor '\(ranges[i - 1].2)'")
        }
        metadata = meta
        metadataKeys = keys
        tensors = infos
        tensorIndex = index
        alignment = align
        dataOffset = dataOff
        headerEnd = r.pos
    }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }
    public func bytes(of t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        file.bytes(at: dataOffset + t.offset, count: t.byteCount)
    }

    struct Reader {
        let file: MappedFile
        var pos = 0
        var path: String { file.path }
        mutating func need(_ n: Int) throws {
            guard n >= 0, pos <= file.size - n else {
                throw FormatsError.truncated(file: path, detail: "header ends early at byte \(pos)")
            }
        }
        mutating func int<T: FixedWidthInteger>() throws -> T {
            try need(MemoryLayout<T>.size)
            let v = file.bytes(at: pos, count: MemoryLayout<T>.size).loadUnaligned(as: T.self)
            pos += MemoryLayout<T>.size
            return T(littleEndian: v)
        }
        mutating func string() throws -> String {
            let n: UInt64 = try int()
            guard n <= UInt64(file.size - pos) else {
                throw FormatsError.truncated(
                    file: path, detail: "string of \(n) bytes at byte \(pos) runs past the end")
            }
            let b = file.bytes(at: pos, count: Int(n))
            pos += Int(n)
            guard let s = String(validating: b, as: UTF8.self) else {
                throw FormatsError.badHeader(file: path, detail: "invalid UTF-8 in a string at byte \(pos - Int(n))")
            }
            return s
        }
        mutating func value(type raw: UInt32, depth: Int, key: String) throws -> GGUFValue {
            guard let t = GGUFValueType(rawValue: raw) else {
                throw FormatsError.badHeader(file: path, detail: "key '\(key)': unknown value type \(raw)")
            }
            switch t {
            case .uint8: return .uint8(try int());
            case .int8: return .int8(try int())
            case .uint16: return .uint16(try int());
            case .int16: return .int16(try int())
            case .uint32: return .uint32(try int());
            case .int32: return .int32(try int())
            case .float32: return .float32(Float(bitPattern: try int()))
            case .bool:
                let b: UInt8 = try int()
                guard b <= 1 else { throw FormatsError.badHeader(file: path, detail: "key '\(key)': bool value \(b)") }
                return .bool(b == 1)
            case .string: return .string(try string())
            case .uint64: return .uint64(try int());
            case .int64: return .int64(try int())
            case .float64: return .float64(Double(bitPattern: try int()))
            case .array:
                guard depth < 2 else {
                    throw FormatsError.badHeader(file: path, detail: "key '\(key)': arrays nested too deeply")
                }
                let et: UInt32 = try int()
                let n: UInt64 = try int()
                let minSize = GGUFValueType(rawValue: et)?.scalarSize ?? 8
                guard n <= UInt64((file.size - pos) / minSize) else {
                    throw FormatsError.truncated(
                        file: path, detail: "key '\(key)': array of \(n) items runs past the end")
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n { items.append(try value(type: et, depth: depth + 1, key: key)) }
                guard let elemType = GGUFValueType(rawValue: et) else {
                    throw FormatsError.badHeader(file: path, detail: "key '\(key)': unknown array type \(et)")
                }
                return .array(elemType, items)
            }
        }
    }
}

extension GGUFValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .string(let s): return "\"\(s.count > 60 ? String(s.prefix(57)) + "…" : s)\""
        case .array(let t, let a): return "[\(a.count) × \(t)]"
        case .bool(let b): return String(b)
        case .float32(let f): return String(f)
        case .float64(let f): return String(f)
        default: return intValue.map(String.init) ?? "?"
        }
    }
}

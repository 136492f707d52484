import Foundation

/// Element types of the safetensors format.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }
    public var isFloat: Bool { [.f64, .f32, .f16, .bf16].contains(self) }
}

/// One tensor of a safetensors file: a typed view into the mapping.
public struct SafetensorsTensor: Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Absolute byte offset in the file.
    public let offset: Int
    public let byteCount: Int
    public let file: MappedFile

    public var elementCount: Int { shape.reduce(1, *) }
    public var bytes: UnsafeRawBufferPointer { file.bytes(at: offset, count: byteCount) }
    /// The same bytes under another name (a tie's stored member read from its derived member's entry).
    public func renamed(_ n: String) -> SafetensorsTensor {
        SafetensorsTensor(name: n, dtype: dtype, shape: shape, offset: offset, byteCount: byteCount, file: file)
    }
}

/// A safetensors file mapped read-only and validated strictly: header length bound, JSON, known dtypes,
/// offsets inside the data section, no overlapping ranges, byte length = shape × dtype size.
public final class SafetensorsFile: @unchecked Sendable {
    /// The format's own bound on the header (100 MB).
    public static let maxHeaderBytes = 100 << 20
    public let path: String
    public let file: MappedFile
    public let metadata: [String: String]
    public let tensors: [String: SafetensorsTensor]
    /// Names in file order (by data offset).
    public let names: [String]

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        self.path = file.path
        let path = file.path
        guard file.size >= 8 else {
            throw FormatsError.truncated(file: path, detail: "\(file.size) bytes, a safetensors file needs at least 8")
        }
        let raw = file.bytes(at: 0, count: 8)
        let headerLen = raw.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLen <= UInt64(Self.maxHeaderBytes) else {
            throw FormatsError.badHeader(file: path, detail: "header length \(headerLen) exceeds the 100 MB bound")
        }
        guard headerLen >= 2 else {
            throw FormatsError.badHeader(
                file: path, detail: "header length \(headerLen) is too small for a JSON object")
        }
        guard 8 + Int(headerLen) <= file.size else {
            throw FormatsError.truncated(
                file: path,
                detail: "header claims \(headerLen) bytes but the file has \(file.size - 8) after the length")
        }
        let headerBytes = file.bytes(at: 8, count: Int(headerLen))
        let json = try JSONValue.parse(bytes: headerBytes, file: path, what: "safetensors header")
        guard case .object(let entries) = json else {
            throw FormatsError.badHeader(file: path, detail: "header is not a JSON object")
        }
        let dataStart = 8 + Int(headerLen)
        let dataSize = file.size - dataStart
        var meta: [String: String] = [:]
        var tensors: [String: SafetensorsTensor] = [:]
        var ranges: [(Int, Int, String)] = []
        for (name, value) in entries {
            if name == "__metadata__" {
                guard case .object(let m) = value else {
                    throw FormatsError.badHeader(file: path, detail: "__metadata__ is not an object")
                }
                for (k, v) in m {
                    guard case .string(let s) = v else {
                        throw FormatsError.badHeader(file: path, detail: "__metadata__['\(k)'] is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard case .object(let t) = value else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "entry is not an object")
            }
            guard case .string(let dtypeName)? = t["dtype"] else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "missing or non-string 'dtype'")
            }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw FormatsError.unknownDType(file: path, tensor: name, dtype: dtypeName)
            }
            guard case .array(let shapeValues)? = t["shape"] else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "missing or non-array 'shape'")
            }
            guard shapeValues.count <= 8 else {
                throw FormatsError.badTensor(
                    file: path, tensor: name, detail: "\(shapeValues.count) dimensions (at most 8 supported)")
            }
            var shape: [Int] = []
            var count = 1
            for v in shapeValues {
                guard let d = v.intValue, d >= 0 else {
                    throw FormatsError.badTensor(
                        file: path, tensor: name, detail: "shape entry \(v) is not a non-negative integer")
                }
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o, m <= dataSize else {
                    throw FormatsError.badTensor(
                        file: path, tensor: name,
                        detail: "shape \(shapeValues.map { $0.description }) is larger than the file")
                }
                count = m
                shape.append(d)
            }
            guard case .array(let offs)? = t["data_offsets"], offs.count == 2,
                let begin = offs[0].intValue, let end = offs[1].intValue
            else {
                throw FormatsError.badTensor(file: path, tensor: name, detail: "missing or malformed 'data_offsets'")
            }
            guard begin >= 0, begin <= end else {
                throw FormatsError.badTensor(
                    file: path, tensor: name, detail: "data_offsets [\(begin), \(end)] are not ordered")
            }
            guard end <= dataSize else {
                throw FormatsError.badTensor(
                    file: path, tensor: name,
                    detail: "data_offsets [\(begin), \(end)] run past the end of the data (\(dataSize) bytes)")
            }
            let expected = count * dtype.byteSize
            guard end - begin == expected else {
                throw FormatsError.badTensor(
                    file: path, tensor: name,
                    detail: "has \(end - begin) bytes but shape \(shape) × \(dtype.rawValue) needs \(expected)")
            }
            tensors[name] = SafetensorsTensor(
                name: name, dtype: dtype, shape: shape, offset: dataStart + begin, byteCount: expected, file: file)
            ranges.append((begin, end, name))
        }
        ranges.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        for i in ranges.indices.dropFirst() where ranges[i].0 < ranges[i - 1].1 {
            throw FormatsError.badTensor(
                file: path, tensor: ranges[i].2, detail: "data overlaps tensor '\(ranges[i - 1].2)'")
        }
        self.metadata = meta
        self.tensors = tensors
        self.names = ranges.map { $0.2 }
    }
}

/// Writes safetensors files (used by tests, fixture tools and the detokenizer weight recipe).
public enum SafetensorsWriter {
    public struct Entry {
        public var name: String
        public var dtype: SafetensorsDType
        public var shape: [Int]
        public var data: Data
        public init(name: String, dtype: SafetensorsDType, shape: [Int], data: Data) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.data = data
        }
    }

    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            header[e.name] =
                ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.data.count]]
                as [String: Any]
            offset += e.data.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries { out.append(e.data) }
        try AtomicFile.write(out, to: path)
    }
}

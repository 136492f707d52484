import Foundation

/// Errors of importance-matrix files: reading them, and matching them against a checkpoint or an export.
public enum ImatrixError: Error, CustomStringConvertible, Equatable {
    /// The file is a GGUF but not an importance matrix (`detail` says what is wrong).
    case notImatrix(file: String, detail: String)
    /// An entry names no matrix of the checkpoint.
    case unknownEntry(file: String, entry: String, checkpoint: String)
    /// An entry's width (sums per matrix) is not the matrix's input width.
    case widthMismatch(file: String, entry: String, tensor: String, expected: Int, got: Int)

    public var description: String {
        switch self {
        case .notImatrix(let f, let d): return "\(f): not an importance matrix: \(d)"
        case .unknownEntry(let f, let e, let c):
            return "\(f): entry '\(e)' names no matrix of \(c) (an imatrix made for another model?)"
        case .widthMismatch(let f, let e, let t, let x, let g):
            return "\(f): entry '\(e)' has \(g) columns, tensor '\(t)' has \(x) (an imatrix made for another model?)"
        }
    }
}

/// An importance matrix in llama.cpp's GGUF layout (tools/imatrix/imatrix.cpp `save_imatrix`, read by
/// common/imatrix-loader.cpp): `general.type = "imatrix"`, `imatrix.datasets` (strings), `imatrix.chunk_count` and
/// `imatrix.chunk_size` (u32), and per matrix two F32 tensors, `<name>.in_sum2` (ne = [columns, 1]: the sum over every
/// input row seen of each column's squared activation) and `<name>.counts` (ne = [1, 1]: the number of rows). The
/// weights of the quantization error are `in_sum2 / counts`, as llama-quantize computes them. docs/format.md §6.2.
public struct ImportanceMatrix: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Per column: the sum of squared activations.
        public var sums: [Float]
        /// Rows seen.
        public var count: Int
        public init(sums: [Float], count: Int) { self.sums = sums; self.count = count }
        /// The weights llama-quantize derives: sum / count per column (1 everywhere when nothing was seen).
        public var weights: [Float] {
            guard count > 0 else { return [Float](repeating: 1, count: sums.count) }
            let c = Float(count)
            return sums.map { $0 / c }
        }
    }

    public var entries: [String: Entry]
    public var datasets: [String]
    public var chunkCount: Int
    public var chunkSize: Int

    public init(entries: [String: Entry] = [:], datasets: [String] = [], chunkCount: Int = 0, chunkSize: Int = 512) {
        self.entries = entries; self.datasets = datasets; self.chunkCount = chunkCount; self.chunkSize = chunkSize
    }

    /// The metadata a quantized file records about this matrix (llama-quantize's keys, and the file's SHA-256).
    public func provenance(file: String) throws -> [(String, GGUFValue)] {
        [
            (BundleKeys.imatrixFile, .string(file)),
            (BundleKeys.imatrixDataset, .string(datasets.first ?? "")),
            (BundleKeys.imatrixEntries, .int32(Int32(clamping: entries.count))),
            (BundleKeys.imatrixChunks, .int32(Int32(clamping: chunkCount))),
            (BundleKeys.imatrixSHA256, .string(try Hashing.sha256(file: file))),
        ]
    }

    public static let sumsSuffix = ".in_sum2"
    public static let countsSuffix = ".counts"
    /// ggml's tensor names hold at most 63 bytes (GGML_MAX_NAME 64): an entry whose `<name>.in_sum2` is longer (Mimi's
    /// and the detokenizer's deep names) is stored under the alias `imatrix_long.<i>`, and `lfm.imatrix.long_names`
    /// lists the real names by i. llama.cpp ignores the key and reads the aliases as entries it has no tensor for.
    public static let maxTensorName = 63
    public static let longNamesKey = "lfm.imatrix.long_names"
    static func alias(_ i: Int) -> String { "imatrix_long.\(i)" }

    /// The GGUF bytes: keys in llama.cpp's order, entries sorted by name (in_sum2 then counts), alignment 32 without a
    /// general.alignment key (as gguf_write_to_file writes).
    public func serialized() -> Data {
        let names = entries.keys.sorted()
        let long = names.filter { $0.utf8.count + Self.sumsSuffix.utf8.count > Self.maxTensorName }
        let aliasOf = Dictionary(uniqueKeysWithValues: long.enumerated().map { ($1, Self.alias($0)) })
        var infos: [GGUFTensorInfo] = []
        for n in names {
            let stored = aliasOf[n] ?? n
            infos.append(GGUFTensorInfo(name: stored + Self.sumsSuffix, dims: [entries[n]!.sums.count, 1], type: .f32))
            infos.append(GGUFTensorInfo(name: stored + Self.countsSuffix, dims: [1, 1], type: .f32))
        }
        let dataSize = GGUF.layout(&infos, alignment: GGUF.specAlignment)
        var meta: [(String, GGUFValue)] = [
            ("general.type", .string("imatrix")),
            ("imatrix.datasets", .strings(datasets)),
            ("imatrix.chunk_count", .uint32(UInt32(clamping: chunkCount))),
            ("imatrix.chunk_size", .uint32(UInt32(clamping: chunkSize))),
        ]
        if !long.isEmpty { meta.append((Self.longNamesKey, .strings(long))) }
        var out = GGUF.header(metadata: meta, tensors: infos)
        let dataStart = (out.count + GGUF.specAlignment - 1) / GGUF.specAlignment * GGUF.specAlignment
        out.append(Data(count: dataStart - out.count))
        var data = Data(count: dataSize)
        data.withUnsafeMutableBytes { d in
            var i = 0
            for n in names {
                let e = entries[n]!
                for (j, v) in e.sums.enumerated() {
                    d.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: infos[i].offset + 4 * j, as: UInt32.self)
                }
                d.storeBytes(
                    of: Float(e.count).bitPattern.littleEndian, toByteOffset: infos[i + 1].offset, as: UInt32.self)
                i += 2
            }
        }
        out.append(data)
        return out
    }

    /// Writes the file (a temporary beside it, renamed when complete).
    public func write(to path: String, overwrite: Bool) throws {
        let bytes = serialized()
        let out = try AtomicFile(destination: path, overwrite: overwrite)
        do {
            try out.reserve(bytes.count)
            try out.write(bytes, at: 0)
            try out.commit()
        } catch {
            out.abandon()
            throw error
        }
    }

    /// Reads an imatrix GGUF (ours or llama.cpp's). Entries with several matrices (MoE experts) are refused.
    public init(path: String) throws {
        let g = try GGUFFile(path: path)
        guard g.metadata["general.type"]?.stringValue == "imatrix" else {
            throw ImatrixError.notImatrix(
                file: path, detail: "general.type is \(g.metadata["general.type"].map { "\($0)" } ?? "missing")")
        }
        var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
        for t in g.tensors {
            if t.name.hasSuffix(Self.sumsSuffix) {
                sums[String(t.name.dropLast(Self.sumsSuffix.count))] = t
            } else if t.name.hasSuffix(Self.countsSuffix) {
                counts[String(t.name.dropLast(Self.countsSuffix.count))] = t
            }
        }
        func floats(_ t: GGUFTensorInfo) throws -> [Float] {
            guard t.type == .f32 else {
                throw FormatsError.badTensor(file: path, tensor: t.name, detail: "type \(t.type.name), expected F32")
            }
            let b = g.bytes(of: t)
            return (0..<t.elementCount).map {
                Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
        }
        let long = g.metadata[Self.longNamesKey]?.stringArray ?? []
        var entries: [String: Entry] = [:]
        for (stored, s) in sums {
            var name = stored
            if stored.hasPrefix("imatrix_long."), let i = Int(stored.dropFirst("imatrix_long.".count)) {
                guard i >= 0, i < long.count else {
                    throw FormatsError.badTensor(
                        file: path, tensor: stored + Self.sumsSuffix,
                        detail: "alias \(i) but \(Self.longNamesKey) has \(long.count) names")
                }
                name = long[i]
            }
            guard let c = counts[stored] else {
                throw FormatsError.badTensor(
                    file: path, tensor: name + Self.sumsSuffix, detail: "has no \(name + Self.countsSuffix)")
            }
            let cs = try floats(c)
            guard cs.count == 1 else {
                throw FormatsError.badTensor(
                    file: path, tensor: c.name, detail: "\(cs.count) matrices (expert tensors are not supported)")
            }
            entries[name] = Entry(sums: try floats(s), count: Int(cs[0].rounded()))
        }
        if let orphan = counts.keys.first(where: { sums[$0] == nil }) {
            throw FormatsError.badTensor(
                file: path, tensor: orphan + Self.countsSuffix, detail: "has no \(orphan + Self.sumsSuffix)")
        }
        self.init(
            entries: entries, datasets: g.metadata["imatrix.datasets"]?.stringArray ?? [],
            chunkCount: g.metadata["imatrix.chunk_count"]?.intValue ?? 0,
            chunkSize: g.metadata["imatrix.chunk_size"]?.intValue ?? 0)
    }
}

import Foundation
import CZlib
import Crypto

/// Checksums: CRC32 (zlib) of tensor bytes, SHA-256 of source files.
public enum Hashing {
    public static func crc32(_ buf: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = UInt(seed)
        var p = buf.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var left = buf.count
        while left > 0, let q = p {
            let n = min(left, 1 << 30)
            crc = CZlib.crc32(crc, q, UInt32(n))
            p = q + n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// CRC of A followed by B, given CRC(A), CRC(B) and B's length.
    public static func crc32Combine(_ a: UInt32, _ b: UInt32, lengthB: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: CZlib.crc32_combine(UInt(a), UInt(b), off_t(lengthB)))
    }

    /// SHA-256 of a whole file, read through a mapping.
    public static func sha256(file path: String) throws -> String {
        let f = try MappedFile(path: path)
        var h = SHA256()
        var off = 0
        let step = 64 << 20
        while off < f.size {
            let n = min(step, f.size - off)
            h.update(bufferPointer: f.bytes(at: off, count: n))
            off += n
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Metadata keys of an LFM2-Audio bundle (normative list in docs/format.md).
public enum BundleKeys {
    public static let architecture = "general.architecture"
    public static let architectureValue = "lfm2-audio"
    public static let alignment = "general.alignment"
    public static let name = "general.name"
    public static let fileType = "general.file_type"
    public static let quantizationVersion = "general.quantization_version"
    public static let formatVersion = "lfm2audio.format_version"
    public static let converterVersion = "lfm2audio.converter_version"
    public static let config = "lfm2audio.config_json"
    public static let mimiConfig = "lfm2audio.mimi.config_json"
    public static let mimiConfigSource = "lfm2audio.mimi.config_source"
    public static let detokenizerConfig = "lfm2audio.detokenizer.config_json"
    public static let components = "lfm2audio.components"
    public static let preset = "lfm2audio.quant.preset"
    public static let overrides = "lfm2audio.quant.overrides"
    public static let recipe = "lfm2audio.quant.recipe_json"
    public static let sourceFiles = "lfm2audio.source.files"
    public static let sourceSHA256 = "lfm2audio.source.sha256"
    public static let sourceBytes = "lfm2audio.source.bytes"
    public static let dropped = "lfm2audio.dropped_tensors"
    /// Tie table (docs/format.md §Tied tensors): `tied_names[i]` is read as the stored tensor `tied_targets[i]`.
    public static let tiedNames = "lfm2audio.tied_names"
    public static let tiedTargets = "lfm2audio.tied_targets"
    /// Provenance of each `source.files` entry: `checkpoint` or `base` (`--base`), and the base folder.
    public static let sourceOrigins = "lfm2audio.source.origins"
    public static let sourceBase = "lfm2audio.source.base"
    /// Training-state files found beside the weights and ignored (optimizer, scheduler, RNG state).
    public static let ignoredFiles = "lfm2audio.source.ignored_files"
    public static let tensorCRC32 = "lfm2audio.tensor_crc32"
    /// Where an importance matrix weighted the quantizers: llama-quantize's four keys (file as given, its first
    /// dataset, entries, chunks), and the file's SHA-256 (ours).
    public static let imatrixFile = "quantize.imatrix.file"
    public static let imatrixDataset = "quantize.imatrix.dataset"
    public static let imatrixEntries = "quantize.imatrix.entries_count"
    public static let imatrixChunks = "quantize.imatrix.chunks_count"
    public static let imatrixSHA256 = "lfm2audio.imatrix_sha256"
    public static let hfTokenizer = "tokenizer.huggingface.json"
    public static let hfTokenizerConfig = "lfm2audio.tokenizer_config_json"
    public static let chatTemplate = "tokenizer.chat_template"
    public static let bos = "tokenizer.ggml.bos_token_id"
    public static let eos = "tokenizer.ggml.eos_token_id"
    public static let pad = "tokenizer.ggml.padding_token_id"
    public static func token(_ name: String) -> String { "lfm2audio.token.\(name)" }
    public static let endOfAudio = "lfm2audio.audio.end_of_audio_code"
    public static let currentFormatVersion: UInt32 = 1
    /// CRC32 of the whole header (metadata and tensor table) with this value's own 4 bytes taken as zero.
    public static let headerCRC32 = "lfm2audio.header_crc32"
}

/// The bundle header checksum (`lfm2audio.header_crc32`): any damage to the metadata or the tensor table is found at
/// open, as the per-tensor CRC32s find damage to the data.
public enum HeaderChecksum {
    /// Byte offset of the key's 4 value bytes in a serialized header, if the key is there.
    static func valueOffset(_ h: UnsafeRawBufferPointer) -> Int? {
        let key = Array(BundleKeys.headerCRC32.utf8)
        var pattern = [UInt8]()
        var n = UInt64(key.count).littleEndian
        withUnsafeBytes(of: &n) { pattern += $0 }
        pattern += key
        pattern += [4, 0, 0, 0]  // GGUF type UINT32
        guard h.count >= pattern.count + 4 else { return nil }
        var i = 0
        let last = h.count - pattern.count - 4
        while i <= last {
            if h[i] == pattern[0] {
                var j = 1
                while j < pattern.count && h[i + j] == pattern[j] { j += 1 }
                if j == pattern.count { return i + pattern.count }
            }
            i += 1
        }
        return nil
    }

    static func crc(_ h: UnsafeRawBufferPointer, zeroAt v: Int) -> UInt32 {
        var c = Hashing.crc32(UnsafeRawBufferPointer(rebasing: h[0..<v]))
        var zero: UInt32 = 0
        c = withUnsafeBytes(of: &zero) { Hashing.crc32($0, seed: c) }
        return Hashing.crc32(UnsafeRawBufferPointer(rebasing: h[(v + 4)...]), seed: c)
    }

    /// Writes the checksum into a serialized header that holds the key (value placeholder), in place.
    public static func seal(_ header: inout Data) {
        guard let v = header.withUnsafeBytes({ valueOffset($0) }) else { return }
        var c = header.withUnsafeBytes { crc($0, zeroAt: v) }.littleEndian
        header.replaceSubrange(v..<(v + 4), with: Data(bytes: &c, count: 4))
    }

    /// nil when the bundle carries no header checksum (bundles written before it existed); else whether it matches.
    public static func check(_ g: GGUFFile) -> Bool? {
        guard case .uint32(let stored)? = g.metadata[BundleKeys.headerCRC32] else { return nil }
        let h = g.file.bytes(at: 0, count: g.headerEnd)
        guard let v = valueOffset(h) else { return false }
        return crc(h, zeroAt: v) == stored
    }
}

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
    public static let tensorCRC32 = "lfm2audio.tensor_crc32"
    public static let hfTokenizer = "tokenizer.huggingface.json"
    public static let hfTokenizerConfig = "lfm2audio.tokenizer_config_json"
    public static let chatTemplate = "tokenizer.chat_template"
    public static let bos = "tokenizer.ggml.bos_token_id"
    public static let eos = "tokenizer.ggml.eos_token_id"
    public static let pad = "tokenizer.ggml.padding_token_id"
    public static func token(_ name: String) -> String { "lfm2audio.token.\(name)" }
    public static let endOfAudio = "lfm2audio.audio.end_of_audio_code"
    public static let currentFormatVersion: UInt32 = 1
}

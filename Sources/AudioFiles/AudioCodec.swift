import CSndfile
import Foundation
import MiniRuntime

/// Audio files in memory through libsndfile: WAV (the runtime's own reader, exactly as the CLI reads it), FLAC,
/// Ogg Vorbis, Ogg Opus and MP3 in; FLAC, Ogg Opus, Ogg Vorbis and MP3 out.
public enum AudioCodec {
    /// Longest decoded input (compressed files can expand a lot): 30 minutes.
    public static let maxSeconds = 1800.0

    public enum OutputFormat: String, Sendable, CaseIterable {
        case flac, opus, mp3, ogg
        var sfFormat: Int32 {
            switch self {
            case .flac: return Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16)
            case .opus: return Int32(SF_FORMAT_OGG | SF_FORMAT_OPUS)
            case .ogg: return Int32(SF_FORMAT_OGG | SF_FORMAT_VORBIS)
            case .mp3: return Int32(SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III)
            }
        }
        public var contentType: String {
            switch self {
            case .flac: return "audio/flac"
            case .opus, .ogg: return "audio/ogg"
            case .mp3: return "audio/mpeg"
            }
        }
    }

    /// Decodes a file's bytes to a mono clip; `name` names it in errors.
    public static func decode(_ bytes: [UInt8], name: String) throws -> AudioClip {
        if bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8) || bytes[0..<4].elementsEqual("RF64".utf8) {
            return try bytes.withUnsafeBytes { try WAVReader.parse(bytes: $0, name: name) }
        }
        guard !bytes.isEmpty else { throw RuntimeError.badInput("\(name): the file is empty") }
        let mem = MemoryFile(bytes)
        var info = SF_INFO()
        var io = MemoryFile.io
        let ud = Unmanaged.passUnretained(mem).toOpaque()
        guard let sf = sf_open_virtual(&io, Int32(SFM_READ), &info, ud) else {
            throw RuntimeError.badInput(
                "\(name): not an audio file this server reads (WAV, FLAC, Ogg Vorbis, Opus, MP3): "
                    + String(cString: sf_strerror(nil)))
        }
        defer { sf_close(sf) }
        let ch = Int(info.channels), rate = Int(info.samplerate)
        guard ch >= 1, ch <= WAVReader.maxChannels else { throw RuntimeError.badInput("\(name): \(ch) channels") }
        guard rate >= 1000, rate <= 384_000 else { throw RuntimeError.badInput("\(name): sample rate \(rate) Hz") }
        let maxFrames = Int(maxSeconds * Double(rate))
        var mono: [Float] = []
        let chunk = 4096
        var buf = [Float](repeating: 0, count: chunk * ch)
        while true {
            let n = Int(buf.withUnsafeMutableBufferPointer { sf_readf_float(sf, $0.baseAddress, sf_count_t(chunk)) })
            if n <= 0 { break }
            for f in 0..<n {
                var s: Float = 0
                for c in 0..<ch { s += buf[f * ch + c] }
                mono.append(s / Float(ch))
            }
            if mono.count > maxFrames {
                throw RuntimeError.badInput("\(name): longer than \(Int(maxSeconds)) s of audio")
            }
        }
        guard !mono.isEmpty else { throw RuntimeError.badInput("\(name): no audio samples") }
        return AudioClip(samples: mono, sampleRate: rate, channels: ch)
    }

    /// Encodes mono samples in [-1, 1] (MP3 at a variable bit rate, with its Xing tag).
    public static func encode(_ samples: [Float], sampleRate: Int, format: OutputFormat) throws -> [UInt8] {
        let s = try Stream(sampleRate: sampleRate, format: format, constantBitRate: false)
        s.write(samples)
        s.close()
        return s.mem.bytes
    }

    /// An encoder whose output is taken while it is produced (a streamed response body). Bytes handed out are final:
    /// what the encoder rewrites at the start when it closes keeps its first version — FLAC's length and checksum
    /// (zero: "not known" to decoders), MP3's Xing tag (a blank first frame). MP3 is written at a constant bit rate,
    /// so that a decoder sizes the stream from its frames without the tag.
    public final class Stream: @unchecked Sendable {  // one owner at a time (the response body that writes it)
        let mem = MemoryFile([])
        var sf: OpaquePointer?
        var taken = 0

        public convenience init(sampleRate: Int, format: OutputFormat) throws {
            try self.init(sampleRate: sampleRate, format: format, constantBitRate: true)
        }

        init(sampleRate: Int, format: OutputFormat, constantBitRate: Bool) throws {
            var info = SF_INFO()
            info.samplerate = Int32(sampleRate)
            info.channels = 1
            info.format = format.sfFormat
            var io = MemoryFile.io
            let ud = Unmanaged.passUnretained(mem).toOpaque()
            guard let sf = sf_open_virtual(&io, Int32(SFM_WRITE), &info, ud) else {
                throw RuntimeError.badInput(
                    "cannot encode \(format.rawValue) at \(sampleRate) Hz: " + String(cString: sf_strerror(nil)))
            }
            sf_command(sf, Int32(SFC_SET_CLIPPING), nil, Int32(SF_TRUE))
            if format == .mp3 && constantBitRate {
                var mode = Int32(SF_BITRATE_MODE_CONSTANT)
                sf_command(sf, Int32(SFC_SET_BITRATE_MODE), &mode, Int32(MemoryLayout<Int32>.size))
            }
            self.sf = sf
        }
        deinit { if let sf { sf_close(sf) } }

        /// Encodes `samples` (mono, [-1, 1]) and returns the bytes the encoder has written since the last call.
        public func append(_ samples: [Float]) -> [UInt8] {
            write(samples)
            return take()
        }

        /// Flushes and closes the encoder; the last bytes.
        public func finish() -> [UInt8] {
            close()
            return take()
        }

        func write(_ samples: [Float]) {
            guard let sf, !samples.isEmpty else { return }
            let clipped = samples.map { max(-1, min(1, $0)) }
            _ = clipped.withUnsafeBufferPointer { sf_writef_float(sf, $0.baseAddress, sf_count_t($0.count)) }
        }

        func close() {
            if let sf { sf_close(sf) }
            sf = nil
        }

        private func take() -> [UInt8] {
            guard mem.bytes.count > taken else { return [] }
            defer { taken = mem.bytes.count }
            return Array(mem.bytes[taken...])
        }
    }

    /// 16-bit little-endian PCM, rounded and clamped as `WAVWriter` writes it.
    public static func pcm16(_ samples: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: samples.count * 2)
        for (i, s) in samples.enumerated() {
            let v = UInt16(bitPattern: Int16(clamping: Int((max(-1, min(1, s)) * 32767).rounded())))
            out[2 * i] = UInt8(v & 0xFF)
            out[2 * i + 1] = UInt8(v >> 8)
        }
        return out
    }

    /// PCM16 little-endian bytes to floats in [-1, 1).
    public static func floats(pcm16 b: [UInt8]) -> [Float] {
        var out = [Float](repeating: 0, count: b.count / 2)
        for i in out.indices { out[i] = Float(Int16(bitPattern: UInt16(b[2 * i]) | UInt16(b[2 * i + 1]) << 8)) / 32768 }
        return out
    }

    /// A 44-byte WAV header (16-bit mono); `dataBytes` nil writes the streaming sizes (0xFFFFFFFF).
    public static func wavHeader(sampleRate: Int, dataBytes: Int?) -> [UInt8] {
        var h: [UInt8] = []
        func u32(_ v: UInt32) { h += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
        func u16(_ v: UInt16) { h += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        h += Array("RIFF".utf8)
        u32(dataBytes.map { UInt32(truncatingIfNeeded: 36 + $0) } ?? 0xFFFF_FFFF)
        h += Array("WAVEfmt ".utf8)
        u32(16); u16(1); u16(1); u32(UInt32(sampleRate)); u32(UInt32(sampleRate * 2)); u16(2); u16(16)
        h += Array("data".utf8)
        u32(dataBytes.map { UInt32(truncatingIfNeeded: $0) } ?? 0xFFFF_FFFF)
        return h
    }
}

/// A seekable file in memory for libsndfile's virtual I/O.
final class MemoryFile {
    var bytes: [UInt8]
    var pos = 0
    init(_ b: [UInt8]) { bytes = b }

    static func from(_ p: UnsafeMutableRawPointer?) -> MemoryFile {
        Unmanaged<MemoryFile>.fromOpaque(p!).takeUnretainedValue()
    }

    static var io: SF_VIRTUAL_IO {
        SF_VIRTUAL_IO(
            get_filelen: { ud in sf_count_t(MemoryFile.from(ud).bytes.count) },
            seek: { offset, whence, ud in
                let m = MemoryFile.from(ud)
                let base: Int
                switch whence {
                case SEEK_CUR: base = m.pos
                case SEEK_END: base = m.bytes.count
                default: base = 0
                }
                let p = base + Int(offset)
                guard p >= 0 else { return -1 }
                m.pos = p
                return sf_count_t(p)
            },
            read: { ptr, count, ud in
                let m = MemoryFile.from(ud)
                let n = max(0, min(Int(count), m.bytes.count - m.pos))
                if n > 0, let ptr {
                    m.bytes.withUnsafeBytes { ptr.copyMemory(from: $0.baseAddress! + m.pos, byteCount: n) }
                }
                m.pos += n
                return sf_count_t(n)
            },
            write: { ptr, count, ud in
                let m = MemoryFile.from(ud)
                let n = Int(count)
                guard n > 0, let ptr else { return 0 }
                if m.pos + n > m.bytes.count { m.bytes += [UInt8](repeating: 0, count: m.pos + n - m.bytes.count) }
                m.bytes.withUnsafeMutableBytes { ($0.baseAddress! + m.pos).copyMemory(from: ptr, byteCount: n) }
                m.pos += n
                return sf_count_t(n)
            },
            tell: { ud in sf_count_t(MemoryFile.from(ud).pos) })
    }
}

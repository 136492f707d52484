import Foundation
import Formats

/// A decoded audio file: mono samples in [-1, 1] (channels averaged) at the file's sample rate.
public struct AudioClip: Sendable {
    public var samples: [Float]
    public var sampleRate: Int
    public var channels: Int
    public var seconds: Double { Double(samples.count) / Double(max(sampleRate, 1)) }
    /// `channels`: how many channels the mono samples were averaged from (1 for mono sources).
    public init(samples: [Float], sampleRate: Int, channels: Int = 1) {
        self.samples = samples; self.sampleRate = sampleRate; self.channels = channels
    }
}

/// RIFF/WAVE reader: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE, any sample rate, several
/// channels averaged to mono; chunks are walked robustly (LIST and other chunks, odd sizes, `data` before `fmt `
/// or not last). Every malformed input is a clear error naming the file.
public enum WAVReader {
    public static let maxChannels = 64
    public static let maxSampleRate = 1_000_000

    /// Reads a file (mapped, not copied), or standard input for "-".
    public static func read(_ path: String) throws -> AudioClip {
        if path == "-" { return try parse(FileHandle.standardInput.readDataToEndOfFile(), name: "<stdin>") }
        let m: MappedFile
        do { m = try MappedFile(path: path) } catch {
            throw RuntimeError.badInput("\(path): cannot read the file (\(error))")
        }
        return try withExtendedLifetime(m) { try parse(bytes: m.bytes(at: 0, count: m.size), name: path) }
    }

    public static func parse(_ data: Data, name: String) throws -> AudioClip {
        try data.withUnsafeBytes { try parse(bytes: $0, name: name) }
    }

    /// Parses WAV bytes (the samples come out as one mono float array; nothing else is copied).
    public static func parse(bytes b: UnsafeRawBufferPointer, name: String) throws -> AudioClip {
        func bad(_ s: String) -> RuntimeError { .badInput("\(name): \(s)") }
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24 }
        func tag(_ o: Int) -> String { String(decoding: b[o..<(o + 4)], as: UTF8.self) }
        guard b.count >= 12 else { throw bad("not a WAV file (only \(b.count) bytes)") }
        guard tag(0) == "RIFF", tag(8) == "WAVE" else {
            if tag(0) == "RF64" { throw bad("RF64 (over 4 GB) WAV files are not supported") }
            throw bad("not a RIFF/WAVE file")
        }
        var format = -1, channels = 0, rate = 0, blockAlign = 0, bits = 0
        var dataRange: Range<Int>? = nil
        var o = 12
        while o + 8 <= b.count {
            let id = tag(o), size = u32(o + 4)
            let start = o + 8
            if id == "fmt " {
                guard size >= 16, start + 16 <= b.count else { throw bad("fmt chunk is truncated") }
                format = u16(start); channels = u16(start + 2); rate = u32(start + 4)
                blockAlign = u16(start + 12); bits = u16(start + 14)
                if format == 0xFFFE {
                    guard size >= 40, start + 40 <= b.count else {
                        throw bad("WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated")
                    }
                    format = u16(start + 24)  // first two bytes of the sub-format GUID
                }
            } else if id == "data" {
                var end = start + size
                if end > b.count {
                    // streamed writers leave 0 or 0xFFFFFFFF; otherwise the file lost its end
                    guard size == 0 || size == 0xFFFF_FFFF else {
                        throw bad("truncated: the data chunk claims \(size) bytes, \(b.count - start) are present")
                    }
                    end = b.count
                }
                if size == 0 { end = b.count }
                dataRange = start..<end
                if end >= b.count { break }
            }
            guard start + size >= start else { throw bad("chunk '\(id)' has an absurd size") }
            o = start + size + (size & 1)
        }
        guard format != -1 else { throw bad("no fmt chunk") }
        guard let dr = dataRange else { throw bad("no data chunk") }
        guard channels > 0, channels <= maxChannels else {
            throw bad("\(channels) channels (1…\(maxChannels) supported)")
        }
        guard rate > 0, rate <= maxSampleRate else { throw bad("sample rate \(rate) Hz is out of range") }
        let bytesPer: Int
        switch (format, bits) {
        case (1, 8), (1, 16), (1, 24), (1, 32), (3, 32), (3, 64): bytesPer = bits / 8
        case (1, _), (3, _): throw bad("\(bits)-bit \(format == 1 ? "PCM" : "float") samples are not supported")
        default: throw bad("audio format \(format) is not supported (PCM and IEEE float only)")
        }
        guard blockAlign >= bytesPer * channels else {
            throw bad("block align \(blockAlign) is too small for \(channels) × \(bits)-bit samples")
        }
        let frames = dr.count / blockAlign
        var out = [Float](repeating: 0, count: frames)
        let inv = 1 / Float(channels)
        do {
            guard let base = b.baseAddress else { return AudioClip(samples: [], sampleRate: rate, channels: channels) }
            for f in 0..<frames {
                var acc: Float = 0
                for c in 0..<channels {
                    let p = dr.lowerBound + f * blockAlign + c * bytesPer
                    let v: Float
                    switch (format, bits) {
                    case (1, 8): v = (Float(b[p]) - 128) / 128
                    case (1, 16): v = Float(Int16(bitPattern: UInt16(b[p]) | UInt16(b[p + 1]) << 8)) / 32768
                    case (1, 24):
                        let u = Int32(b[p]) | Int32(b[p + 1]) << 8 | Int32(b[p + 2]) << 16
                        v = Float((u << 8) >> 8) / 8_388_608
                    case (1, 32):
                        v = Float(base.loadUnaligned(fromByteOffset: p, as: Int32.self).littleEndian) / 2_147_483_648
                    case (3, 32):
                        v = Float(bitPattern: base.loadUnaligned(fromByteOffset: p, as: UInt32.self).littleEndian)
                    default:
                        v = Float(
                            Double(bitPattern: base.loadUnaligned(fromByteOffset: p, as: UInt64.self).littleEndian))
                    }
                    acc += v
                }
                out[f] = acc * inv
            }
        }
        if format == 3, let i = out.firstIndex(where: { !$0.isFinite }) {
            throw bad("sample frame \(i) is not a finite number (NaN or infinity in float data)")
        }
        return AudioClip(samples: out, sampleRate: rate, channels: channels)
    }
}

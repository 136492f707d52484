import Foundation
import Formats
#if canImport(Glibc)
import Glibc
/// write(2), named apart from the writer's own `write` methods.
private let sysWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let sysWrite = Darwin.write
#endif

/// Streams a mono WAV file while audio is produced: 16-bit PCM (clamped to [−1, 1], ×32767, rounded) or 32-bit
/// float. A file is written to a temporary name beside the destination with its header sizes updated after every
/// write (what is on disk is always a valid WAV), and renamed into place by `finish()`. "-" streams to standard
/// output with the streaming size convention (0xFFFFFFFF) since the header cannot be rewritten. A streaming sink:
/// `step` appends samples, `reset` empties a file (standard output cannot be rewound).
public final class WAVWriter: StreamingState {
    public enum Format: String, Sendable { case pcm16 = "pcm16", f32 = "f32" }
    public let path: String
    public let sampleRate: Int
    public let format: Format
    let file: AtomicFile?
    private(set) public var samplesWritten = 0
    var bytesPerSample: Int { format == .pcm16 ? 2 : 4 }

    public init(path: String, sampleRate: Int, format: Format = .pcm16, overwrite: Bool = true) throws {
        self.path = path; self.sampleRate = sampleRate; self.format = format
        file = path == "-" ? nil : try AtomicFile(destination: path, overwrite: overwrite)
        try put(header(dataBytes: path == "-" ? 0xFFFF_FFFF : 0), at: 0)
    }

    func header(dataBytes: Int) -> Data {
        var d = Data()
        func u32(_ v: Int) { var x = UInt32(truncatingIfNeeded: v).littleEndian; d.append(Data(bytes: &x, count: 4)) }
        func u16(_ v: Int) { var x = UInt16(truncatingIfNeeded: v).littleEndian; d.append(Data(bytes: &x, count: 2)) }
        d.append(contentsOf: Array("RIFF".utf8)); u32(dataBytes == 0xFFFF_FFFF ? 0xFFFF_FFFF : 36 + dataBytes);
        d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(format == .pcm16 ? 1 : 3); u16(1); u32(sampleRate)
        u32(sampleRate * bytesPerSample); u16(bytesPerSample); u16(8 * bytesPerSample)
        d.append(contentsOf: Array("data".utf8)); u32(dataBytes)
        return d
    }

    func put(_ d: Data, at offset: Int) throws {
        if let file { try file.write(d, at: offset); return }
        try d.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = sysWrite(1, b.baseAddress! + off, b.count - off)
                if n < 0 {
                    if errno == EINTR { continue };
                    throw RuntimeError.badInput("<stdout>: write failed: \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
    }

    /// Appends samples and updates the header.
    public func write(_ samples: [Float]) throws {
        guard !samples.isEmpty else { return }
        var d = Data(count: samples.count * bytesPerSample)
        d.withUnsafeMutableBytes { raw in
            if format == .pcm16 {
                let p = raw.bindMemory(to: Int16.self)
                for (i, s) in samples.enumerated() {
                    p[i] = Int16(clamping: Int((max(-1, min(1, s)) * 32767).rounded())).littleEndian
                }
            } else {
                let p = raw.bindMemory(to: UInt32.self)
                for (i, s) in samples.enumerated() { p[i] = s.bitPattern.littleEndian }
            }
        }
        try put(d, at: 44 + samplesWritten * bytesPerSample)
        samplesWritten += samples.count
        if file != nil {
            let n = samplesWritten * bytesPerSample
            var r = UInt32(truncatingIfNeeded: 36 + n).littleEndian, s = UInt32(truncatingIfNeeded: n).littleEndian
            try put(Data(bytes: &r, count: 4), at: 4)
            try put(Data(bytes: &s, count: 4), at: 40)
        }
    }

    public var seconds: Double { Double(samplesWritten) / Double(sampleRate) }

    /// Appends samples (the streaming protocol's step).
    public func step(_ samples: [Float]) throws { try write(samples) }

    /// Empties the file: what follows starts a new recording (no effect on standard output).
    public func reset() {
        guard let file else { return }
        samplesWritten = 0
        _ = ftruncate(file.fd, 44)
        try? put(header(dataBytes: 0), at: 0)
    }

    /// Bytes held in memory (none: every write goes to the file).
    public var bytes: Int { 0 }

    /// Completes the file (fsync and rename into place).
    public func finish() throws { try file?.commit() }
    /// Drops the temporary file.
    public func abandon() { file?.abandon() }
}

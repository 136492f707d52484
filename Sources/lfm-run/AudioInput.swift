import AudioFiles
import Foundation
import MiniRuntime

/// Reads an `--audio` file: WAV (and "-" for standard input) with the runtime's own reader, FLAC, Ogg Vorbis, Opus
/// and MP3 through libsndfile.
func readAudio(_ path: String) throws -> AudioClip {
    if path == "-" || path.lowercased().hasSuffix(".wav") { return try WAVReader.read(path) }
    guard let d = FileManager.default.contents(atPath: path) else {
        throw RuntimeError.badInput("\(path): cannot read the file")
    }
    return try AudioCodec.decode([UInt8](d), name: path)
}

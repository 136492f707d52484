import ArgumentParser
import Foundation
import LFMServer
import MiniRuntime

/// Hidden: runs the server's voice activity detector (`VoiceActivityDetector`, the one `/v1/realtime` uses) over a
/// recording and prints the speech segments it finds, for scripts/bench/vad_f1.py. No bundle is needed.
struct VADCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vad",
        abstract: "Speech segments found by the server's voice activity detector in a recording (one JSON line each).",
        discussion:
            """
            Output: {\"start_ms\":S,\"end_ms\":E} per segment, then \
            {\"type\":\"done\",\"ms\":TOTAL,\"frame_ms\":20}. The audio is fed in 20 ms pieces, as a realtime \
            client sends it.
            """,
        shouldDisplay: false)

    @Option(help: "The recording: WAV, FLAC, Ogg, Opus or MP3 (channels averaged, the file's own rate).")
    var audio: String
    @Option(help: "0…1: higher needs louder speech over the noise floor (the server's default is 0.5).")
    var threshold: Double = 0.5
    @Option(help: "Silence that ends speech, in milliseconds (the server's default is 500).")
    var silenceMs: Int = 500

    func validate() throws {
        guard (0...1).contains(threshold) else { throw ValidationError("--threshold must be between 0 and 1") }
        guard (20...10000).contains(silenceMs) else { throw ValidationError("--silence-ms must be 20 to 10000") }
    }

    func run() throws {
        let clip = try readAudio(audio)
        var vad = VoiceActivityDetector(rate: clip.sampleRate, threshold: threshold, silenceMs: silenceMs)
        let piece = max(clip.sampleRate / 50, 1)
        var start: Int?
        var o = 0
        while o < clip.samples.count {
            let end = min(o + piece, clip.samples.count)
            for e in vad.push(Array(clip.samples[o..<end])) {
                switch e {
                case .started(let ms): start = ms
                case .stopped(let ms):
                    out(jsonLine(["start_ms": start ?? 0, "end_ms": ms]) + "\n")
                    start = nil
                }
            }
            o = end
        }
        let total = clip.samples.count * 1000 / clip.sampleRate
        if let s = start { out(jsonLine(["start_ms": s, "end_ms": total]) + "\n") }
        out(jsonLine(["type": "done", "ms": total, "frame_ms": 20]) + "\n")
    }
}

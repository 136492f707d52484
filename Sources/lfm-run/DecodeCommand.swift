import ArgumentParser
import Foundation
import Formats
import MiniRuntime

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode Mimi codes (a JSON list of frames, each 8 codes) into a 24 kHz WAV.",
        discussion: "Frames holding 2048 (end of audio) end an utterance and are not decoded.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "JSON file: [[c0,…,c7], …] (- reads stdin).")
    var codes: String
    @OptionGroup var audioOut: AudioOutputOptions

    func validate() throws {
        guard audioOut.output != nil else {
            throw ValidationError("-o/--output is required (a WAV path, or - for stdout)")
        }
    }

    func run() throws {
        Interrupt.install()
        let data: Data
        if codes == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let d = FileManager.default.contents(atPath: codes) else {
                throw RunError(message: "\(codes): cannot read the file")
            }
            data = d
        }
        let name = codes == "-" ? "<stdin>" : codes
        let frames = try CodesJSON.parse(data, name: name)
        let (model, _) = try openModel(runtime)
        let decoder = try SpeechDecoder(model: model, kind: audioOut.decoderKind)
        let n = model.config.codebooks
        for (i, f) in frames.enumerated() where f.count != n {
            throw RunError(message: "\(name): frame \(i) has \(f.count) codes, expected \(n)")
        }
        let writer = try WAVWriter(
            path: audioOut.output!, sampleRate: SpeechDecoder.sampleRate, format: audioOut.format)
        let t0 = Date()
        do {
            for f in frames {
                if Interrupt.requested { break }
                try writer.write(try decoder.push(f))
            }
            try writer.write(decoder.finish())
            try writer.finish()
        } catch { writer.abandon(); throw error }
        let wall = Date().timeIntervalSince(t0)
        if runtime.json {
            out(
                jsonLine([
                    "type": "done", "kernel_tier": KernelTier.report().tier, "blas": KernelTier.report().blas,
                    "frames": frames.count, "decoder": decoder.kind.rawValue, "audio_seconds": writer.seconds,
                    "decoder_seconds": decoder.decodeSeconds,
                    "ms_per_frame": frames.isEmpty ? 0 : 1000 * decoder.decodeSeconds / Double(frames.count),
                    "wall_seconds": wall,
                ]) + "\n")
        }
        if runtime.stats {
            printErr(
                String(
                    format: "%d frames → %.2f s of audio with %@ in %.3f s (%.2f ms per frame, %.1fx real time)",
                    frames.count, writer.seconds,
                    decoder.kind.rawValue, decoder.decodeSeconds,
                    frames.isEmpty ? 0 : 1000 * decoder.decodeSeconds / Double(frames.count),
                    decoder.decodeSeconds > 0 ? writer.seconds / decoder.decodeSeconds : 0))
        }
    }
}

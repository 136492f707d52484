import ArgumentParser
import Foundation
import Formats
import MiniRuntime

/// Flags shared by the commands that speak.
struct AudioOutputOptions: ParsableArguments {
    @Option(
        name: [.short, .customLong("output")], help: "The WAV file to write (24 kHz mono); - streams a WAV to stdout.")
    var output: String?
    @Option(help: "mimi or detokenizer (default: the detokenizer when the bundle has it).")
    var decoder: String?
    @Option(help: "pcm16 (default) or f32.")
    var wavFormat: String = "pcm16"
    @Option(help: "Audio temperature (per codebook).")
    var audioTemperature: Float?
    @Option(help: "Audio top-k (ties at the threshold are kept, like the reference).")
    var audioTopK: Int?

    func validate() throws {
        if let d = decoder, DecoderKind(rawValue: d) == nil {
            throw ValidationError("--decoder must be mimi or detokenizer")
        }
        if WAVWriter.Format(rawValue: wavFormat) == nil { throw ValidationError("--wav-format must be pcm16 or f32") }
        if let t = audioTemperature, !(t >= 0 && t <= 100) {
            throw ValidationError("--audio-temperature must be between 0 and 100")
        }
        if let k = audioTopK, k < 1 { throw ValidationError("--audio-top-k must be at least 1") }
    }
    var decoderKind: DecoderKind? { decoder.flatMap { DecoderKind(rawValue: $0) } }
    var format: WAVWriter.Format { WAVWriter.Format(rawValue: wavFormat) ?? .pcm16 }
    /// The task's audio sampling (the reference's defaults, from the library) with this command's overrides.
    func sampling(for task: TaskPreset, seed: UInt64, greedy: Bool) -> SamplingParams {
        task.audioSampling(temperature: audioTemperature, topK: audioTopK, seed: seed &+ 1, greedy: greedy)
    }
}

/// Runs one assistant turn that may speak: text to stdout (or JSON events), the library's decoded samples written
/// to a WAV as they come, Ctrl-C stops cleanly (the WAV keeps what was spoken), statistics at the end.
final class SpeechTurn {
    let runtime: RuntimeOptions
    let session: Conversation
    let decoder: DecoderKind?
    var writer: WAVWriter?
    let textToStderr: Bool

    /// `decoder`: the decoder to speak with (nil: the bundle's default); ignored without a writer.
    init(runtime: RuntimeOptions, session: Conversation, decoder: DecoderKind?, writer: WAVWriter?) {
        self.runtime = runtime; self.session = session; self.decoder = decoder; self.writer = writer
        textToStderr = writer?.path == "-"
    }

    func text(_ s: String) { if textToStderr { FileHandle.standardError.write(Data(s.utf8)) } else { out(s) } }

    func run(
        _ content: [UserContent], mode: GenerationMode, generation: GenerationOptions, audioSampling: SamplingParams,
        turnStart: Date, loadSeconds: Double
    ) throws {
        let samples0 = writer?.samplesWritten ?? 0
        var writeError: Error?
        let offset = Date().timeIntervalSince(turnStart)  // reading the input, before the library's turn clock
        let stats = try session.generate(
            user: content, mode: mode, maxTokens: generation.maxTokens, sampling: generation.sampling,
            audioSampling: audioSampling, audio: writer != nil ? .speech(decoder: decoder) : .codes
        ) { ev in
            if Interrupt.requested { session.cancel() }
            switch ev {
            case .text(let id, let piece):
                if runtime.json {
                    if !textToStderr { out(jsonLine(["type": "text", "id": id, "text": piece]) + "\n") }
                } else {
                    text(piece)
                }
            case .audio(let codes):
                if runtime.json && !textToStderr { out(jsonLine(["type": "audio", "codes": codes]) + "\n") }
            case .samples(let y):
                guard let writer, writeError == nil else { return }
                do { try writer.write(y) } catch {
                    printErr("error: \(error)"); writeError = error; session.cancel()
                }
            case .done: break
            }
        }
        if let writeError { throw writeError }
        let peak = peakRSSBytes()
        let spoken = Double((writer?.samplesWritten ?? 0) - samples0) / Double(SpeechDecoder.sampleRate)
        let wall = Date().timeIntervalSince(turnStart)
        let firstAudible = stats.timeToFirstAudio > 0 ? offset + stats.timeToFirstAudio : 0
        let decoderName = stats.decoder?.rawValue ?? "none"
        if runtime.json && !textToStderr {
            out(
                jsonLine([
                    "type": "done", "kernel_tier": KernelTier.report().tier, "blas": KernelTier.report().blas,
                    "stop_reason": stats.stopReason.rawValue, "prompt_tokens": stats.promptTokens,
                    "generated_tokens": stats.generatedTokens, "audio_frames": stats.audioFrames,
                    "load_seconds": loadSeconds,
                    "audio_in_positions": stats.audioPositions, "mel_seconds": stats.melSeconds,
                    "encoder_seconds": stats.encoderSeconds,
                    "prefill_seconds": stats.prefillSeconds, "text_steps_before_audio": stats.textStepsBeforeAudio,
                    "time_to_first_token": stats.timeToFirstToken, "time_to_first_frame": stats.timeToFirstFrame,
                    "first_frame_head_seconds": stats.firstFrameHeadSeconds,
                    "first_frame_decode_seconds": stats.firstDecodeSeconds,
                    "time_to_first_audio": firstAudible, "audio_head_seconds": stats.audioHeadSeconds,
                    "decoder_seconds": stats.decoderSeconds,
                    "decoder": decoderName, "audio_seconds": spoken, "wall_seconds": wall,
                    "real_time_factor": wall > 0 ? spoken / wall : 0, "peak_rss_bytes": peak,
                ]) + "\n")
        } else if !runtime.json {
            text("\n")
        }
        if runtime.stats {
            printErr(
                "kernels " + KernelTier.report().tier + " | "
                    + String(
                        format:
                            """
                            load %.3f s | read+mel %.3f s | encoder %.3f s (%d positions) | prefill %.3f s (%d \
                            positions) | %d text steps before audio | first frame at %.3f s (depthformer %.3f s) | \
                            first decode %.3f s | first audio %.3f s | %d frames, %.2f s of audio in %.2f s = \
                            %.2fx real time | depthformer %.3f s, decoder (%@) %.3f s | peak RSS %.1f MB | stop: \
                            %@
                            """,
                        loadSeconds, stats.melSeconds, stats.encoderSeconds, stats.audioPositions, stats.prefillSeconds,
                        stats.promptTokens,
                        stats.textStepsBeforeAudio, stats.timeToFirstFrame, stats.firstFrameHeadSeconds,
                        stats.firstDecodeSeconds, firstAudible,
                        stats.audioFrames, spoken, wall, wall > 0 ? spoken / wall : 0, stats.audioHeadSeconds,
                        decoderName, stats.decoderSeconds, Double(peak) / 1048576, stats.stopReason.rawValue))
        }
    }
}

import ArgumentParser
import Foundation
import Formats
import MiniRuntime

struct ASRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asr",
        abstract:
            """
            Transcribe a WAV file (system prompt \"Perform ASR.\", sequential mode); the transcript streams to \
            stdout.
            """,
        discussion:
            """
            Recordings longer than --window seconds are split at low-energy points and transcribed window after \
            window, one line per window. With --json: {\"type\":\"segment\",\"start\":S,\"end\":E}, \
            {\"type\":\"text\",...} and a final {\"type\":\"done\",...} event.
            """
    )

    @OptionGroup var runtime: RuntimeOptions
    @Option(
        help:
            """
            The recording: WAV (PCM 8/16/24/32-bit or float 32/64, any rate, channels averaged; - reads stdin), \
            FLAC, Ogg, Opus or MP3.
            """
    )
    var audio: String
    @Option(help: "System prompt.")
    var system: String = TaskPreset.asr.system
    @Option(help: "Longest window transcribed at once, in seconds (longer recordings are split at quiet points).")
    var window: Double = 30
    @OptionGroup var generation: GenerationOptions

    func validate() throws {
        guard window >= 1, window <= 600 else { throw ValidationError("--window must be between 1 and 600 seconds") }
    }

    func run() throws {
        Interrupt.install()
        let clip = try readAudio(audio)
        let (model, loadSeconds) = try openModel(runtime)
        let tr = try Transcriber(model: model)
        var opts = TranscriptionOptions()
        opts.maxWindowSeconds = window
        opts.system = system
        opts.maxTokens = generation.maxTokens
        opts.sampling = generation.sampling
        let st = try tr.transcribe(clip, options: opts) { ev in
            if Interrupt.requested { tr.cancel() }
            switch ev {
            case .segment(_, let s, let e):
                if runtime.json { out(jsonLine(["type": "segment", "start": s, "end": e]) + "\n") }
            case .text(let id, let piece):
                if runtime.json { out(jsonLine(["type": "text", "id": id, "text": piece]) + "\n") } else { out(piece) }
            case .segmentDone:
                if !runtime.json { out("\n") }
            }
        }
        let peak = peakRSSBytes()
        let stop = st.stopReasons.last?.rawValue ?? "none"
        if runtime.json {
            out(
                jsonLine([
                    "type": "done", "kernel_tier": KernelTier.report().tier, "blas": KernelTier.report().blas,
                    "stop_reason": stop, "windows": st.windows, "audio_seconds": st.audioSeconds,
                    "audio_positions": st.audioPositions, "generated_tokens": st.generatedTokens,
                    "load_seconds": loadSeconds, "mel_seconds": st.melSeconds, "encoder_seconds": st.encoderSeconds,
                    "prefill_seconds": st.prefillSeconds, "decode_seconds": st.decodeSeconds,
                    "time_to_first_token": st.firstTokenSeconds, "wall_seconds": st.wallSeconds,
                    "real_time_factor": st.realTimeFactor, "peak_rss_bytes": peak,
                ]) + "\n")
        }
        if runtime.stats {
            printErr(
                "kernels " + KernelTier.report().tier + " | "
                    + String(
                        format:
                            """
                            load %.3f s | audio %.2f s in %d window(s), %d positions | mel %.3f s | encoder %.3f s \
                            | prefill %.3f s | first token %.3f s | decode %d tokens %.3f s | %.2fx real time | \
                            peak RSS %.1f MB | stop: %@
                            """,
                        loadSeconds, st.audioSeconds, st.windows, st.audioPositions, st.melSeconds, st.encoderSeconds,
                        st.prefillSeconds, st.firstTokenSeconds, st.generatedTokens, st.decodeSeconds,
                        st.realTimeFactor,
                        Double(peak) / 1048576, stop))
        }
    }
}

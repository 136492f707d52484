import ArgumentParser
import Foundation
import Formats
import MiniRuntime

struct GenerationOptions: ParsableArguments {
    @Option(help: "Maximum generation steps (the reference's max_new_tokens).")
    var maxTokens: Int = 512
    @Option(help: "Text temperature (default: greedy, like the reference).")
    var temperature: Float?
    @Option(help: "Text top-k (ties at the threshold are kept, like the reference).")
    var topK: Int?
    @Option(help: "Nucleus sampling after top-k (extra; off by default).")
    var topP: Float?
    @Option(help: "Repetition penalty (extra; off by default).")
    var repetitionPenalty: Float?
    @Option(help: "Seed for sampled runs (any sampled run is reproducible).")
    var seed: UInt64 = 0
    @Flag(help: "Force greedy decoding.")
    var greedy = false

    func validate() throws {
        guard maxTokens >= 1, maxTokens <= 1_000_000 else {
            throw ValidationError("--max-tokens must be between 1 and 1000000")
        }
        if let t = temperature, !(t >= 0 && t <= 100) {
            throw ValidationError("--temperature must be between 0 and 100")
        }
        if let k = topK, k < 1 { throw ValidationError("--top-k must be at least 1") }
        if let p = topP, !(p > 0 && p <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if let r = repetitionPenalty, !(r > 0 && r <= 10) {
            throw ValidationError("--repetition-penalty must be in (0, 10]")
        }
    }
    var sampling: SamplingParams {
        greedy
            ? SamplingParams(seed: seed)
            : SamplingParams(
                temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty, seed: seed)
    }
}

struct RuntimeOptions: ParsableArguments {
    @Option(help: "The bundle (.gguf) made by lfm-convert.")
    var bundle: String
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Context limit in positions.")
    var ctx: Int = 8192
    @Flag(help: "JSON Lines events on stdout.")
    var json = false
    @Flag(help: "Timing and memory statistics on stderr.")
    var stats = false
    @Flag(help: "Check every tensor's CRC32 before running (reads the whole bundle).")
    var verify = false
    func validate() throws {
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
        guard ctx >= 16, ctx <= 1 << 22 else { throw ValidationError("--ctx must be between 16 and 4194304") }
    }
}

/// Opens the bundle for a command (and checks every tensor's CRC32 with --verify); returns the load time too.
func openModel(_ runtime: RuntimeOptions) throws -> (LFMModel, Double) {
    let t0 = Date()
    let model = try LFMModel(
        path: runtime.bundle, options: ModelOptions(threads: runtime.threads, contextLimit: runtime.ctx))
    if runtime.verify {
        let bad = model.bundle.damagedTensors(threads: runtime.threads)
        if !bad.isEmpty {
            throw RunError(
                message:
                    """
                    \(runtime.bundle): \(bad.count) damaged tensors (CRC32 mismatch): \
                    \(bad.prefix(5).joined(separator: ", "))
                    """
            )
        }
    }
    return (model, Date().timeIntervalSince(t0))
}

struct TextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text",
        abstract:
            "Text chat in the reference's sequential mode; without --prompt, an interactive multi-turn chat on stdin.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The user message (one turn).")
    var prompt: String?
    @Option(help: "System prompt (a system turn is added only when given).")
    var system: String?
    @Option(help: "An audio file (WAV, FLAC, Ogg, Opus, MP3) heard before --prompt (needs the audio encoder).")
    var audio: String?
    @OptionGroup var generation: GenerationOptions

    func run() throws {
        Interrupt.install()
        let (model, loadSeconds) = try openModel(runtime)
        let session = Conversation(model: model, system: system)
        if prompt != nil || audio != nil {
            var content: [UserContent] = []
            if let audio { content.append(.audio(try readAudio(audio))) }
            if let prompt { content.append(.text(prompt)) }
            try turn(session, content, loadSeconds: loadSeconds)
            return
        }
        // interactive: one line per user turn; "/audio PATH [text]" puts a WAV file in the turn
        if !runtime.json {
            printErr("lfm-run: interactive chat; one message per line (/audio PATH [text] for speech), Ctrl-D ends.")
        }
        while true {
            if !runtime.json { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine(strippingNewline: true) else { break }
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            var content: [UserContent] = [.text(line)]
            if line.hasPrefix("/audio ") {
                let rest = line.dropFirst(7).trimmingCharacters(in: .whitespaces)
                let path = String(rest.prefix { $0 != " " }),
                    text = rest.dropFirst(path.count).trimmingCharacters(in: .whitespaces)
                do { content = [.audio(try readAudio(path))] } catch { printErr("error: \(error)"); continue }
                if !text.isEmpty { content.append(.text(text)) }
            }
            try turn(session, content, loadSeconds: loadSeconds)
            Interrupt.clear()
        }
    }

    func turn(_ session: Conversation, _ content: [UserContent], loadSeconds: Double) throws {
        let stats = try session.generate(user: content, maxTokens: generation.maxTokens, sampling: generation.sampling)
        { ev in
            if Interrupt.requested { session.cancel() }
            guard case .text(let id, let piece) = ev else { return }
            if runtime.json { out(jsonLine(["type": "text", "id": id, "text": piece]) + "\n") } else { out(piece) }
        }
        let peak = peakRSSBytes()
        if runtime.json {
            out(
                jsonLine([
                    "type": "done", "kernel_tier": KernelTier.report().tier, "blas": KernelTier.report().blas,
                    "stop_reason": stats.stopReason.rawValue, "prompt_tokens": stats.promptTokens,
                    "generated_tokens": stats.generatedTokens, "load_seconds": loadSeconds,
                    "prefill_seconds": stats.prefillSeconds, "prefill_tokens_per_second": stats.prefillTokensPerSecond,
                    "time_to_first_token": stats.timeToFirstToken,
                    "decode_tokens_per_second": stats.decodeTokensPerSecond,
                    "peak_rss_bytes": peak, "audio_positions": stats.audioPositions,
                    "mel_seconds": stats.melSeconds, "encoder_seconds": stats.encoderSeconds,
                ]) + "\n")
        } else {
            out("\n")
        }
        if runtime.stats {
            printErr(
                "kernels " + KernelTier.report().tier + " | "
                    + String(
                        format:
                            """
                            load %.3f s | prompt %d tokens, prefill %.1f tok/s | first token %.3f s | decode %d \
                            tokens, %.2f tok/s | peak RSS %.1f MB | stop: %@
                            """,
                        loadSeconds, stats.promptTokens, stats.prefillTokensPerSecond, stats.timeToFirstToken,
                        stats.generatedTokens, stats.decodeTokensPerSecond, Double(peak) / 1048576,
                        stats.stopReason.rawValue))
        }
    }
}

import ArgumentParser
import Foundation
import MiniRuntime
import RuntimeTools

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Backbone throughput like llama-bench (ppN prefill, tgN decode) and the machine's read bandwidth.")

    @Option(help: "The bundle (.gguf).")
    var bundle: String
    @Option(name: [.short, .customLong("prompt-tokens")], help: "Prefill test size (0 to skip).")
    var p: Int = 512
    @Option(name: [.short, .customLong("gen-tokens")], help: "Decode test size (0 to skip).")
    var n: Int = 128
    @Option(name: [.short, .customLong("repeats")], help: "Repetitions (median reported).")
    var r: Int = 3
    @Option(help: "Worker threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Also measure read bandwidth (1 GiB, same threads).")
    var bandwidth = false
    @Flag(help: "JSON on stdout.")
    var json = false
    @Option(
        help:
            """
            ASR benchmark instead: a WAV file, transcribed with exactly -n decode steps (encoder, prefill, decode \
            timed).
            """
    )
    var audio: String?
    @Option(
        help:
            """
            TTS speed benchmark instead: this many audio frames generated and decoded (LM step, depthformer, \
            decoder timed).
            """
    )
    var speechFrames: Int?
    @Option(help: "Decoder for --speech-frames: mimi or detokenizer (default: the detokenizer when present).")
    var decoder: String?
    @Option(
        help:
            """
            Batched-decode benchmark instead: this many concurrent speech streams (interleaved chat turns of -n \
            steps), against one stream and against the same streams unbatched.
            """
    )
    var streams: Int?
    @Flag(help: "With --streams: codes only (no decoder), to measure the model's steps alone.")
    var codesOnly = false

    func run() throws {
        if let audio { try runASR(audio); return }
        if let speechFrames { try runSpeech(speechFrames); return }
        if let streams { try runStreams(streams); return }
        let model = try LFMModel(path: bundle, options: ModelOptions(threads: threads, contextLimit: max(p, n) + 16))
        let res = try Benchmark.run(model, promptTokens: p, genTokens: n, repeats: r)
        func median(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[a.count / 2] }
        let bw = bandwidth ? Benchmark.readBandwidth(threads: threads) : 0
        let pp = median(res.prefillTokensPerSecond), tg = median(res.decodeTokensPerSecond)
        let bound = bw > 0 ? bw / Double(res.weightBytesPerToken) : 0
        if json {
            print(
                jsonLine([
                    "bundle": bundle, "threads": threads, "kernel_tier": KernelTier.report().tier,
                    "blas": KernelTier.report().blas, "pp": p, "tg": n, "pp_tokens_per_second": pp,
                    "tg_tokens_per_second": tg,
                    "pp_runs": res.prefillTokensPerSecond, "tg_runs": res.decodeTokensPerSecond,
                    "weight_bytes_per_token": res.weightBytesPerToken, "read_bandwidth_bytes_per_second": bw,
                    "bandwidth_bound_tokens_per_second": bound, "peak_rss_bytes": peakRSSBytes(),
                ]))
        } else {
            print(
                """
                kernels \(KernelTier.report().tier) (best here: \(KernelTier.report().best)), BLAS \
                \(KernelTier.report().blas)
                """
            )
            print(
                String(
                    format: "pp%d %.2f tok/s | tg%d %.2f tok/s | backbone %.0f MB/token", p, pp, n, tg,
                    Double(res.weightBytesPerToken) / 1e6))
            if bw > 0 {
                print(
                    String(
                        format: "read bandwidth %.1f GB/s → bound %.1f tok/s; tg reaches %.0f%%", bw / 1e9, bound,
                        100 * tg / bound))
            }
        }
    }

    func runASR(_ path: String) throws {
        let clip = try readAudio(path)
        let model = try LFMModel(path: bundle, options: ModelOptions(threads: threads, contextLimit: 4096 + n))
        let res = try Benchmark.asr(model, clip: clip, tokens: n, repeats: r)
        func median(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[a.count / 2] }
        let total = median(res.totalSeconds)
        if json {
            print(
                jsonLine([
                    "bundle": bundle, "threads": threads, "kernel_tier": KernelTier.report().tier,
                    "blas": KernelTier.report().blas, "audio": path, "audio_seconds": res.audioSeconds,
                    "audio_positions": res.positions, "prompt_positions": res.promptPositions, "decode_tokens": n,
                    "mel_seconds": median(res.melSeconds), "encoder_seconds": median(res.encoderSeconds),
                    "prefill_seconds": median(res.prefillSeconds), "decode_seconds": median(res.decodeSeconds),
                    "total_seconds": total, "real_time_factor": res.audioSeconds / total,
                    "encoder_runs": res.encoderSeconds, "total_runs": res.totalSeconds,
                    "peak_rss_bytes": peakRSSBytes(),
                ]))
        } else {
            print(
                String(
                    format:
                        """
                        audio %.1f s → %d positions (prompt %d) | mel %.3f s | encoder %.3f s | prefill %.3f s \
                        (%.1f pos/s) | decode %d tokens %.3f s | total %.3f s = %.2fx real time
                        """,
                    res.audioSeconds, res.positions, res.promptPositions, median(res.melSeconds),
                    median(res.encoderSeconds),
                    median(res.prefillSeconds), Double(res.promptPositions) / median(res.prefillSeconds), n,
                    median(res.decodeSeconds), total, res.audioSeconds / total))
        }
    }

    func runStreams(_ count: Int) throws {
        guard count >= 1 else { throw ValidationError("--streams must be at least 1") }
        let batched = try LFMModel(
            path: bundle, options: ModelOptions(threads: threads, contextLimit: n + 256, batchDecode: true))
        let plain = try LFMModel(path: bundle, options: ModelOptions(threads: threads, contextLimit: n + 256))
        func median(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[a.count / 2] }
        var one: [Benchmark.StreamsResult] = [], many: [Benchmark.StreamsResult] = []
        var unbatched: [Benchmark.StreamsResult] = []
        for _ in 0..<r {
            one.append(try Benchmark.streams(batched, streams: 1, steps: n, speech: !codesOnly))
            many.append(try Benchmark.streams(batched, streams: count, steps: n, speech: !codesOnly))
            unbatched.append(try Benchmark.streams(plain, streams: count, steps: n, speech: !codesOnly))
        }
        let f1 = median(one.map(\.framesPerSecond)), fn = median(many.map(\.framesPerSecond))
        let fu = median(unbatched.map(\.framesPerSecond))
        let ttf = median(many.flatMap(\.firstFrameSeconds))
        // each repeat's batched / one-stream ratio (both measured back to back): steadier than the ratio of medians
        // on a machine whose speed drifts
        let paired = median(zip(many, one).map { $0.framesPerSecond / max($1.framesPerSecond, 1e-9) })
        if json {
            print(
                jsonLine([
                    "bundle": bundle, "threads": threads, "kernel_tier": KernelTier.report().tier, "streams": count,
                    "steps": n, "speech": !codesOnly, "one_stream_frames_per_second": f1,
                    "batched_frames_per_second": fn, "unbatched_frames_per_second": fu, "batched_speedup": fn / f1,
                    "batched_speedup_paired": paired, "unbatched_speedup": fu / f1,
                    "batched_time_to_first_frame_seconds": ttf,
                    "one_runs": one.map(\.framesPerSecond), "batched_runs": many.map(\.framesPerSecond),
                    "unbatched_runs": unbatched.map(\.framesPerSecond), "peak_rss_bytes": peakRSSBytes(),
                ]))
        } else {
            print(
                "kernels \(KernelTier.report().tier), \(threads) threads, \(n) steps per stream, speech \(!codesOnly)")
            print(
                String(
                    format:
                        """
                        1 stream %.2f frames/s | %d streams batched %.2f frames/s (%.2fx; per-run median %.2fx) | \
                        %d streams unbatched %.2f frames/s (%.2fx) | first frame (batched) %.2f s
                        """,
                    f1, count, fn, fn / f1, paired, count, fu, fu / f1, ttf))
        }
    }

    func runSpeech(_ frames: Int) throws {
        let model = try LFMModel(path: bundle, options: ModelOptions(threads: threads, contextLimit: frames + 256))
        let kind = decoder.flatMap { DecoderKind(rawValue: $0) }
        let res = try Benchmark.speech(model, frames: frames, decoder: kind, repeats: r)
        func median(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[a.count / 2] }
        let total = median(res.totalSeconds)
        let per = { (a: [Double]) in 1000 * median(a) / Double(frames) }
        if json {
            print(
                jsonLine([
                    "bundle": bundle, "threads": threads, "kernel_tier": KernelTier.report().tier,
                    "blas": KernelTier.report().blas, "frames": frames, "decoder": kind?.rawValue ?? "default",
                    "audio_seconds": res.audioSeconds, "total_seconds": total,
                    "real_time_factor": res.audioSeconds / total,
                    "lm_ms_per_frame": per(res.lmSeconds), "depthformer_ms_per_frame": per(res.headSeconds),
                    "decoder_ms_per_frame": per(res.decoderSeconds), "total_runs": res.totalSeconds,
                    "peak_rss_bytes": peakRSSBytes(),
                ]))
        } else {
            print(
                String(
                    format:
                        """
                        %d frames → %.2f s of audio in %.3f s = %.2fx real time | per frame: LM %.1f ms, \
                        depthformer %.1f ms, decoder %.1f ms
                        """,
                    frames, res.audioSeconds, total, res.audioSeconds / total, per(res.lmSeconds), per(res.headSeconds),
                    per(res.decoderSeconds)))
        }
    }
}

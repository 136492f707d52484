import ArgumentParser
import Foundation
import MiniRuntime
import RuntimeTools

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract:
            "Top-1 agreement and KL divergence of the next-token distribution of bundles against a baseline bundle "
            + "(e.g. q8_0/q4_0 against f32), and per codebook for the audio head."
    )

    @Option(help: "Baseline bundle (usually f32).")
    var baseline: String
    @Option(name: .customLong("bundle"), help: "Bundle(s) to compare (repeatable).")
    var bundles: [String]
    @Option(name: .customLong("prompt"), help: "User prompts (repeatable; default: a small built-in set).")
    var prompts: [String] = []
    @Option(help: "System prompt.")
    var system: String?
    @Option(help: "Greedy steps per prompt.")
    var maxTokens: Int = 32
    @Option(help: "Worker threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(
        name: .customLong("sentence"), help: "User turns for the audio head (repeatable; default: two built in).")
    var sentences: [String] = []
    @Option(help: "Generation steps per sentence for the audio head (text tokens and frames).")
    var audioSteps: Int = 40
    @Option(help: "How the audio head's turns run: chat (interleaved, the default) or tts (sequential, us-female).")
    var audioTask: String = "chat"
    @Flag(help: "Compare the text head only.")
    var textOnly = false
    @Flag(help: "JSON on stdout.")
    var json = false

    static let defaultSentences = ["The weather is lovely today.", "Please call me back after five."]

    static let defaultPrompts = [
        "Hello! How are you today?", "Write one sentence about the sea.", "What is 17 times 23?",
        "Translate 'good morning' into French.", "List three colours.",
    ]

    func run() throws {
        guard !bundles.isEmpty else { throw ValidationError("give at least one --bundle") }
        let task: TaskPreset
        switch audioTask {
        case "chat": task = .chat
        case "tts": task = .tts(.usFemale)
        default: throw ValidationError("--audio-task: '\(audioTask)' is not chat or tts")
        }
        let opts = ModelOptions(threads: threads, contextLimit: 4096)
        let base = try LFMModel(path: baseline, options: opts)
        let ps = prompts.isEmpty ? Self.defaultPrompts : prompts
        if !json {
            print(
                "bundle".padding(toLength: 48, withPad: " ", startingAt: 0)
                    + "  steps  top-1 agree   mean KL     max KL")
        }
        for b in bundles {
            let cand = try LFMModel(path: b, options: opts)
            let r = try NextTokenComparison.run(
                baseline: base, candidate: cand, system: system, prompts: ps, steps: maxTokens)
            let audio =
                textOnly || base.audioHead == nil || cand.audioHead == nil
                ? nil
                : try AudioHeadComparison.run(
                    baseline: base, candidate: cand, sentences: sentences.isEmpty ? Self.defaultSentences : sentences,
                    task: task, steps: audioSteps)
            if json {
                var line: [String: Any] = [
                    "bundle": b, "baseline": baseline, "steps": r.steps, "top1_agreement": r.top1Rate,
                    "mean_kl": r.meanKL, "max_kl": r.maxKL,
                ]
                if let audio {
                    line["audio_frames"] = audio.frames
                    line["depth_top1_agreement"] = audio.top1Rate
                    line["depth_mean_kl"] = audio.meanKL
                }
                print(jsonLine(line))
            } else {
                let name = URL(fileURLWithPath: b).lastPathComponent
                print(
                    name.padding(toLength: 48, withPad: " ", startingAt: 0)
                        + String(format: "  %5d   %8.2f%%   %.3e  %.3e", r.steps, 100 * r.top1Rate, r.meanKL, r.maxKL))
                if let audio {
                    let top1 = audio.top1Rate.map { String(format: "%.0f", 100 * $0) }.joined(separator: " ")
                    let kl = audio.meanKL.map { String(format: "%.2g", $0) }.joined(separator: " ")
                    print("  depthformer, \(audio.frames) frames: top-1 % per codebook \(top1) | mean KL \(kl)")
                }
            }
        }
    }
}

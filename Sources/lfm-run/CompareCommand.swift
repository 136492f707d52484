import ArgumentParser
import Foundation
import MiniRuntime
import RuntimeTools

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract:
            "Top-1 agreement and KL divergence of the next-token distribution of bundles against a baseline bundle (e.g. q8_0/q4_0 against f32)."
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
    @Flag(help: "JSON on stdout.")
    var json = false

    static let defaultPrompts = [
        "Hello! How are you today?", "Write one sentence about the sea.", "What is 17 times 23?",
        "Translate 'good morning' into French.", "List three colours.",
    ]

    func run() throws {
        guard !bundles.isEmpty else { throw ValidationError("give at least one --bundle") }
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
            if json {
                print(
                    jsonLine([
                        "bundle": b, "baseline": baseline, "steps": r.steps, "top1_agreement": r.top1Rate,
                        "mean_kl": r.meanKL, "max_kl": r.maxKL,
                    ]))
            } else {
                let name = URL(fileURLWithPath: b).lastPathComponent
                print(
                    name.padding(toLength: 48, withPad: " ", startingAt: 0)
                        + String(format: "  %5d   %8.2f%%   %.3e  %.3e", r.steps, 100 * r.top1Rate, r.meanKL, r.maxKL))
            }
        }
    }
}

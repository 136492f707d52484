import ArgumentParser
import Foundation
import MiniRuntime
import RuntimeTools

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract:
            "Compare a bundle with the PyTorch reference, stage by stage, on a dump made by scripts/reference/dump.py.",
        discussion:
            """
            Exit status 0 when every stage is within the tolerance for the bundle's types (f32: strict; f16/bf16, \
            q8_0, q4_0: looser, streams reported), 1 otherwise. The first failing stage is named.
            """
    )

    @Option(help: "The bundle (.gguf).")
    var bundle: String
    @Option(help: "The dump (.safetensors; its .json manifest beside it).")
    var reference: String
    @Option(help: "Worker threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "JSON report on stdout.")
    var json = false

    func run() throws {
        let model = try LFMModel(path: bundle, options: ModelOptions(threads: threads, contextLimit: 16384))
        let r = try Parity.run(model: model, dump: reference, bundlePath: bundle)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            var d = try JSONSerialization.jsonObject(with: enc.encode(r)) as! [String: Any]
            d["ok"] = r.ok
            d["first_failure"] = r.firstFailure ?? NSNull()
            print(jsonLine(d))
        } else {
            print("bundle \(bundle) (\(r.bundleType)) vs \(reference) (mode \(r.mode))\n")
            func sh(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
            print(
                "stage".padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                    + "shape".padding(toLength: 18, withPad: " ", startingAt: 0)
                    + "   max abs    rel err    cosine       status")
            for row in r.rows {
                var line =
                    row.stage.padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                    + sh(row.shape).padding(toLength: 18, withPad: " ", startingAt: 0)
                line +=
                    String(format: " %10.3g %10.3g %12.8f  ", row.maxAbs, row.relErr, row.cosine)
                    + (row.ok ? "ok" : "FAIL") + "  (\(row.tolerance))"
                print(line)
                if let n = row.steps {
                    var s = "    stream: \(row.reproduced ?? 0)/\(n) decisions reproduced"
                    if let d = row.firstDivergence {
                        s += String(
                            format: ", first divergence at step %d (reference top-2 margin %.3g: %@)", d,
                            row.marginAtDivergence ?? 0,
                            (row.nearTie ?? false) ? "a near-tie" : "not a near-tie")
                    } else {
                        s += ", no divergence"
                    }
                    if let a = row.top1Agreement {
                        s += String(format: "; top-1 agreement %.1f %%, mean KL %.3g", 100 * a, row.meanKL ?? 0)
                    }
                    print(s)
                }
            }
            print(r.ok ? "\nparity: ok" : "\nparity: FAIL — first failing stage: \(r.firstFailure ?? "?")")
        }
        if !r.ok { throw ExitCode(1) }
    }
}

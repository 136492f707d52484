import ArgumentParser
import Foundation
import Formats
import Quantize

struct ExportLlamaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-llama",
        abstract: "Export the LFM2 backbone as a llama.cpp `lfm2` GGUF (text only), for llama.cpp tools and side-by-side benchmarks.")

    @Argument(help: "Checkpoint folder, hub-cache snapshot folder, or repo id in the local hub cache.")
    var checkpoint: String

    @Option(name: [.short, .customLong("output")], help: "Output GGUF.")
    var output: String

    @Option(name: .customLong("quant"), help: "f32, f16, bf16, q8_0, q4_0.")
    var quant: String = "bf16"

    @Flag(help: "Overwrite an existing output.")
    var force = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard Preset(rawValue: quant) != nil else { throw ValidationError("unknown preset '\(quant)' (f32, f16, bf16, q8_0, q4_0)") }
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
    }

    func run() throws {
        let out = URL(fileURLWithPath: output).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: out), !force {
            throw CLIError(message: "\(out): already exists (use --force to overwrite)", code: 2)
        }
        StaleTemporaries.remove(near: out)
        let ckpt = try Checkpoint(checkpoint)
        let bar = ProgressBar(enabled: stderrIsTerminal, label: "exporting")
        let r = try LlamaExport.export(ckpt, preset: Preset(rawValue: quant)!, to: out, options: ConvertOptions(threads: threads, overwrite: force),
                                       progress: { bar.update($0) }, isCancelled: { Interrupt.requested })
        bar.finish()
        print("wrote \(out) (\(fmtBytes(r.bytes)), llama.cpp arch lfm2, \(quant)) in \(String(format: "%.2f", r.seconds)) s")
    }
}

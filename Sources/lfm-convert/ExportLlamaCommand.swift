import ArgumentParser
import Foundation
import Formats
import Quantize

struct ExportLlamaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-llama",
        abstract:
            """
            Export the LFM2 backbone as a llama.cpp `lfm2` GGUF (text only), for llama.cpp tools and side-by-side \
            benchmarks.
            """
    )

    @Argument(help: "Checkpoint folder, hub-cache snapshot folder, or repo id in the local hub cache.")
    var checkpoint: String

    @OptionGroup var target: OutputOptions

    @Option(
        name: .customLong("base"),
        help: "The model a fine-tune was trained from: supplies the files the checkpoint folder lacks (as for convert)."
    )
    var base: String?

    @Option(name: .customLong("quant"), help: "f32, f16, bf16, q8_0, q4_0, q3_k_m, q4_k_m, q5_k_m, q6_k.")
    var quant: String = "bf16"

    @Option(
        help: ArgumentHelp(
            """
            Importance matrix (GGUF imatrix layout): the weights of the quantization error, as llama-quantize \
            --imatrix uses them.
            """,
            valueName: "FILE"))
    var imatrix: String?

    func validate() throws {
        guard Preset(rawValue: quant) != nil else {
            throw ValidationError("unknown preset '\(quant)' (\(Preset.names))")
        }
    }

    func run() throws {
        let dest = try target.destination()
        let ckpt = try Checkpoint(checkpoint, base: base)
        let bar = ProgressBar(enabled: stderrIsTerminal, label: "exporting")
        let preset = Preset(rawValue: quant)!
        var importance: ImportanceMatrix?
        if let imatrix { importance = try ImportanceMatrix(path: imatrix) }
        let r = try LlamaExport.export(
            ckpt, preset: preset, to: dest, imatrix: importance.map { ($0, imatrix!) },
            report: { printImatrixReport($0, file: imatrix!) },
            options: ConvertOptions(threads: target.threads, overwrite: target.force),
            progress: { bar.update($0) }, isCancelled: { Interrupt.requested })
        bar.finish()
        print(
            """
            wrote \(dest) (\(fmtBytes(r.bytes)), llama.cpp arch lfm2, \(quant)) \
            in \(String(format: "%.2f", r.seconds)) s
            """
        )
    }
}

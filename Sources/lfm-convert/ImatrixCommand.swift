import ArgumentParser
import Foundation
import Formats
import AudioFiles
import Quantize
@_spi(Tools) import RuntimeTools
@_spi(Tools) import MiniRuntime

struct ImatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imatrix",
        abstract:
            """
            Run the model over calibration inputs (text prompts, audio through ASR and chat, TTS sentences) and \
            write an importance matrix for every component's matrices, in llama.cpp's GGUF imatrix layout.
            """
    )

    @Argument(help: "Checkpoint folder (converted to a temporary F32 bundle first) or a bundle (.gguf; F32 is best).")
    var model: String

    @Option(
        help: ArgumentHelp(
            """
            Calibration folder: *.txt text prompts, WAV/FLAC files (ASR and spoken chat), tts/*.txt sentences (one \
            per line).
            """,
            valueName: "DIR"))
    var calibrate: String

    @OptionGroup var target: OutputOptions

    @Option(help: "Steps per calibration turn (text tokens and audio frames together).")
    var maxTokens: Int = 64

    @Option(name: .customLong("base"), help: "The base model of a fine-tuned checkpoint (as for convert).")
    var base: String?

    @Flag(help: "Print the summary as JSON on stdout.")
    var json = false

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
    }

    func run() throws {
        Interrupt.install()
        let t0 = Date()
        let out = try target.destination()
        let set = try CalibrationSet(directory: calibrate)
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        var bundlePath = model
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDir), !isDir.boolValue {
            bundlePath = model
        } else {
            // a checkpoint: an F32 bundle in a scratch folder beside the output (removed at the end)
            let ckpt = try Checkpoint(model, base: base)
            let dir = URL(fileURLWithPath: out).deletingLastPathComponent().path + "/.imatrix-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            scratch = dir
            bundlePath = dir + "/f32.gguf"
            let plan = try Planner.plan(ckpt, recipe: Recipe(preset: .f32))
            let bar = ProgressBar(enabled: stderrIsTerminal && !json, label: "f32 bundle")
            _ = try Converter.convert(
                ckpt, plan: plan, to: bundlePath, options: ConvertOptions(threads: target.threads),
                progress: { bar.update($0) }, isCancelled: { Interrupt.requested })
            bar.finish()
        }
        let m = try LFMModel(path: bundlePath, options: ModelOptions(threads: target.threads, contextLimit: 8192))
        let bundle = m.bundle
        if let t = bundle.gguf.tensors.first(where: { $0.type != .f32 && $0.dims.count >= 2 }), !json {
            printErr("warning: \(bundlePath) holds \(t.type.name) matrices; activations of an F32 bundle are best")
        }
        // recorded: products whose weight is a bundle matrix (or a tied name of one) read with its stored width
        var widths: [String: Int] = [:]
        for t in bundle.gguf.tensors where t.dims.count >= 2 { widths[t.name] = ImatrixNames.width(of: t.shape) }
        for (derived, stored) in bundle.ties { widths[derived] = widths[stored] }
        let accept = widths
        let stats = ActivationStatistics(accept: { name, cols in accept[name] == cols })
        let bar = ItemBar(enabled: stderrIsTerminal && !json)
        ActivationHook.observer = stats
        defer { ActivationHook.observer = nil }
        let tRun = Date()
        try Calibration.run(
            model: m, set: set, maxTokens: maxTokens,
            load: { path in
                guard let d = FileManager.default.contents(atPath: path) else {
                    throw RuntimeError.badInput("\(path): cannot read the file")
                }
                return try AudioCodec.decode([UInt8](d), name: path)
            },
            progress: { done, total, label in
                if Interrupt.requested { return }
                bar.update(done, total, label)
            })
        ActivationHook.observer = nil
        bar.finish()
        if Interrupt.requested { throw QuantizeError.cancelled }
        let runSeconds = Date().timeIntervalSince(tRun)
        let bad = stats.nonFinite()
        if !bad.isEmpty {
            throw CLIError(
                message: "non-finite activations in \(bad.prefix(4).joined(separator: ", ")); no file written")
        }
        // canonical names (a tied name counts for its stored tensor), backbone under llama.cpp's names
        var merged: [String: (sums: [Double], count: Int)] = [:]
        for (name, s) in stats.snapshot() {
            let key = ImatrixNames.entry(forBundle: bundle.ties[name] ?? name)
            if var e = merged[key] {
                for j in e.sums.indices { e.sums[j] += s.sums[j] }
                e.count += s.count
                merged[key] = e
            } else {
                merged[key] = s
            }
        }
        let chunkSize = 512
        let maxCount = merged.values.map(\.count).max() ?? 0
        let imatrix = ImportanceMatrix(
            entries: merged.mapValues { .init(sums: $0.sums.map { Float($0) }, count: $0.count) },
            datasets: [URL(fileURLWithPath: calibrate).standardizedFileURL.path],
            chunkCount: (maxCount + chunkSize - 1) / chunkSize, chunkSize: chunkSize)
        try imatrix.write(to: out, overwrite: target.force)

        var perComponent: [String: Int] = [:]
        for name in merged.keys {
            let bundleName = bundle.gguf.tensors.first { ImatrixNames.entry(forBundle: $0.name) == name }?.name ?? name
            let c = Component.allCases.first { c in BundleNames.prefixes(c).contains { bundleName.hasPrefix($0) } }
            perComponent[c?.rawValue ?? "other", default: 0] += 1
        }
        let unseen = widths.keys.filter { bundle.ties[$0] == nil && merged[ImatrixNames.entry(forBundle: $0)] == nil }
        let seconds = Date().timeIntervalSince(t0)
        if json {
            print(
                jsonString([
                    "output": out, "entries": merged.count, "components": perComponent, "inputs": set.items.count,
                    "seconds": seconds, "calibration_seconds": runSeconds, "max_rows": maxCount,
                    "matrices_not_seen": unseen.sorted(),
                ]))
            return
        }
        print(
            "wrote \(out): \(merged.count) matrices from \(set.items.count) calibration turns in "
                + String(format: "%.1f s", seconds))
        for (c, n) in perComponent.sorted(by: { $0.key < $1.key }) { print("  \(pad(c, 16))\(lpad("\(n)", 5))") }
        if !unseen.isEmpty {
            print(
                "matrices no product read (\(unseen.count)): "
                    + unseen.sorted().prefix(6).joined(separator: ", ") + (unseen.count > 6 ? ", …" : ""))
        }
    }
}

/// A progress bar over calibration turns on stderr (only when it is a terminal).
final class ItemBar {
    let enabled: Bool
    let start = Date()
    init(enabled: Bool) { self.enabled = enabled }
    func update(_ done: Int, _ total: Int, _ label: String) {
        guard enabled else { return }
        let frac = total > 0 ? Double(done) / Double(total) : 1
        let width = 30, filled = Int(frac * Double(width))
        let el = Date().timeIntervalSince(start)
        let eta = frac > 0 ? el / frac - el : 0
        let name = label.count > 40 ? String(label.prefix(39)) + "…" : label
        let line =
            "\r\u{1B}[Kcalibrating [" + String(repeating: "#", count: filled)
            + String(repeating: ".", count: width - filled) + "] \(done)/\(total)  "
            + String(format: "ETA %.0fs  ", eta) + name
        FileHandle.standardError.write(Data(line.utf8))
    }
    func finish() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }
}

import ArgumentParser
import Foundation
import Formats
import Quantize

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint (folder, hub-cache snapshot, or repo id in the local hub cache) to a bundle.")

    @Argument(
        help:
            """
            Checkpoint folder, hub-cache snapshot folder, or repo id (e.g. LiquidAI/LFM2-Audio-1.5B) in the local \
            hub cache.
            """
    )
    var checkpoint: String

    @Option(
        name: .customLong("base"),
        help:
            """
            The model a fine-tune was trained from (folder, hub snapshot or repo id): supplies the files the \
            checkpoint folder lacks (config.json, tokenizer, chat template, Mimi, audio_detokenizer/).
            """
    )
    var base: String?

    @OptionGroup var target: OutputOptions

    @Option(name: .customLong("quant"), help: "Preset: f32, f16, bf16, q8_0, q4_0, q3_k_m, q4_k_m, q5_k_m, q6_k.")
    var quant: String = "q8_0"

    @Option(
        name: .customLong("override"),
        help: ArgumentHelp("Store tensors matching GLOB as TYPE (repeatable).", valueName: "GLOB=TYPE"))
    var overrides: [String] = []

    @Flag(
        name: .customLong("keep-all"),
        help: "Keep tensors inference never reads (Mimi encoder, training heads, buffers).")
    var keepAll = false

    @Option(
        help: ArgumentHelp(
            """
            Importance matrix (llama.cpp's GGUF imatrix layout, from `lfm-convert imatrix` or llama-imatrix): the \
            weights of the quantization error for Q4_0 and the K-quants.
            """,
            valueName: "FILE"))
    var imatrix: String?

    @Flag(help: "Print the summary as JSON on stdout.")
    var json = false

    func validate() throws {
        guard Preset(rawValue: quant) != nil else {
            throw ValidationError("unknown preset '\(quant)' (\(Preset.names))")
        }
        for o in overrides {
            do { _ = try TypeOverride(parsing: o) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() throws {
        let monitor = MemoryMonitor()
        defer { monitor.stop() }
        let t0 = Date()
        let recipe = Recipe(preset: Preset(rawValue: quant)!, overrides: try overrides.map(TypeOverride.init(parsing:)))
        let threads = target.threads
        let out = try target.destination()
        let ckpt = try Checkpoint(checkpoint, base: base)
        let inputs = Set(ckpt.sourceFiles.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path })
        if inputs.contains(URL(fileURLWithPath: out).resolvingSymlinksInPath().path) {
            throw CLIError(message: "\(out): is one of the input files; the input is never modified", code: 2)
        }
        for w in ckpt.warnings where !json { printErr("warning: \(w)") }
        var plan = try Planner.plan(ckpt, recipe: recipe, keepAll: keepAll)
        var imatrixReport: ImatrixReport?
        if let imatrix {
            let m = try ImportanceMatrix(path: imatrix)
            imatrixReport = try m.apply(
                to: &plan.tensors, known: ImportanceMatrix.knownMatrices(plan), file: imatrix, checkpoint: ckpt.root,
                entryName: ImatrixNames.entry(forBundle:))
            if !json { printImatrixReport(imatrixReport!, file: imatrix) }
            plan.extraMetadata = try m.provenance(file: imatrix)
        }
        let tPlan = Date()
        let bar = ProgressBar(enabled: stderrIsTerminal && !json, label: "converting")
        let result = try Converter.convert(
            ckpt, plan: plan, to: out, options: ConvertOptions(threads: threads, overwrite: target.force),
            progress: { bar.update($0) }, isCancelled: { Interrupt.requested })
        bar.finish()
        let seconds = Date().timeIntervalSince(t0)
        let peak = monitor.peakAnonBytes

        var rows: [[String: Any]] = []
        for c in Component.allCases {
            let ts = plan.tensors.filter { $0.component == c }
            let dr = plan.dropped.filter { $0.component == c }
            guard !ts.isEmpty || !dr.isEmpty else { continue }
            let srcBytes = ts.reduce(0) { $0 + $1.sourceBytes } + dr.reduce(0) { $0 + $1.bytes }
            rows.append([
                "component": c.rawValue, "tensors": ts.count, "dropped": dr.count,
                "source_bytes": srcBytes, "bundle_bytes": ts.reduce(0) { $0 + $1.byteCount },
            ])
        }
        if json {
            let summary: [String: Any] = [
                "output": out, "preset": recipe.preset.rawValue, "overrides": recipe.overrides.map(\.description),
                "bytes": result.bytes, "tensors": plan.tensors.count,
                "dropped": plan.dropped.map { ["name": $0.name, "reason": $0.reason] },
                "components": rows, "seconds": seconds, "plan_seconds": tPlan.timeIntervalSince(t0),
                "write_seconds": result.seconds, "phases": result.phases, "peak_anon_bytes": peak, "threads": threads,
                "warnings": ckpt.warnings,
                "imatrix": imatrixReport.map {
                    ["file": imatrix!, "weighted": $0.weighted.count, "missing": $0.missing, "unused": $0.unused.count]
                } as Any,
                "ignored_files": ckpt.ignoredFiles,
                "ties": plan.ties.map {
                    ["name": $0.derived, "stored_as": $0.stored, "config_key": $0.key, "checkpoint_held": $0.held]
                },
                "sources": ckpt.sourceFiles.map {
                    ["file": ckpt.relativeName(of: $0), "origin": ckpt.origin(of: $0).rawValue]
                },
            ]
            print(jsonString(summary))
            return
        }
        print(
            """
            wrote \(out) (\(fmtBytes(result.bytes)), \(plan.tensors.count) tensors, preset \(recipe.preset.rawValue)) \
            in \(String(format: "%.2f", seconds)) s
            """
        )
        print(pad("component", 16) + lpad("tensors", 8) + lpad("dropped", 8) + lpad("source", 12) + lpad("bundle", 12))
        for r in rows {
            print(
                pad(r["component"] as! String, 16) + lpad("\(r["tensors"] as! Int)", 8)
                    + lpad("\(r["dropped"] as! Int)", 8)
                    + lpad(fmtBytes(r["source_bytes"] as! Int), 12) + lpad(fmtBytes(r["bundle_bytes"] as! Int), 12))
        }
        if !ckpt.ignoredFiles.isEmpty {
            print("ignored training state (not model weights): \(ckpt.ignoredFiles.joined(separator: ", "))")
        }
        if let b = ckpt.baseRoot {
            let fromBase = ckpt.sourceFiles.filter { ckpt.origin(of: $0) == .base }.map(ckpt.relativeName)
            print("from the base \(b): \(fromBase.isEmpty ? "nothing" : fromBase.joined(separator: ", "))")
        }
        if !plan.ties.isEmpty {
            let byKey = Dictionary(grouping: plan.ties, by: \.key)
            for (k, ts) in byKey.sorted(by: { $0.key < $1.key }) {
                let held = Set(ts.map(\.held)).sorted().joined(separator: ", ")
                print(
                    "tied (\(k)): \(ts.count) × stored once, checkpoint held \(held): "
                        + ts.map { "\($0.derived) = \($0.stored)" }.prefix(3).joined(separator: "; ")
                        + (ts.count > 3 ? "; …" : ""))
            }
        }
        if !plan.dropped.isEmpty {
            let byReason = Dictionary(grouping: plan.dropped, by: \.reason)
            print("dropped \(plan.dropped.count) tensors inference never reads (--keep-all keeps them):")
            for (reason, items) in byReason.sorted(by: { $0.key < $1.key }) {
                print("  \(items.count) × \(reason) (\(fmtBytes(items.reduce(0) { $0 + $1.bytes })))")
            }
        }
        print(
            String(format: "throughput %.0f MB/s of output", Double(result.bytes) / 1e6 / max(result.seconds, 1e-9))
                + ", peak anonymous memory \(fmtBytes(peak))")
    }
}

/// Leftovers of interrupted runs (`.NAME.tmp-PID-*` whose process is gone) are removed before a new run.
enum StaleTemporaries {
    static func remove(near output: String) {
        let url = URL(fileURLWithPath: output)
        let dir = url.deletingLastPathComponent().path
        let prefix = "." + url.lastPathComponent + ".tmp-"
        for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasPrefix(prefix) {
            let pidText = f.dropFirst(prefix.count).prefix { $0.isNumber }
            guard let pid = Int32(pidText), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink(dir + "/" + f)
        }
    }
}

/// A one-line progress bar on stderr (tensors, MB/s, ETA), only when stderr is a terminal.
final class ProgressBar: @unchecked Sendable {
    let enabled: Bool
    let label: String
    let start = Date()
    let lock = NSLock()
    var last = Date.distantPast
    init(enabled: Bool, label: String) { self.enabled = enabled; self.label = label }
    func update(_ p: ConvertProgress) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(last) > 0.1 || p.bytesDone == p.bytesTotal else { return }
        last = now
        let frac = p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : 1
        let width = 30, filled = Int(frac * Double(width))
        let el = now.timeIntervalSince(start)
        let rate = Double(p.bytesDone) / 1e6 / max(el, 1e-6)
        let eta = frac > 0 ? el / frac - el : 0
        let line =
            "\r\(label) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            + "] "
            + "\(p.tensorsDone)/\(p.tensorsTotal) tensors  " + String(format: "%.0f MB/s  ETA %.0fs ", rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
    }
    func finish() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// One line on how an importance matrix was used, and the quantized tensors it had no entry for.
func printImatrixReport(_ r: ImatrixReport, file: String) {
    printErr(
        "imatrix \(file): \(r.weighted.count) tensors weighted, \(r.missing.count) without an entry, "
            + "\(r.unused.count) entries for tensors kept in a type without a weighted quantizer")
    if !r.missing.isEmpty {
        printErr("  no entry: " + r.missing.prefix(6).joined(separator: ", ") + (r.missing.count > 6 ? ", …" : ""))
    }
}

import ArgumentParser
import Foundation
import Formats
import Quantize

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every tensor's CRC32; with --against, measure each tensor's error against its source.")

    @Argument(help: "Bundle (.gguf).")
    var bundle: String

    @Option(name: .customLong("against"), help: "The checkpoint the bundle was converted from.")
    var against: String?

    @Option(
        name: .customLong("base"),
        help: "With --against a fine-tune folder: the base model that supplied its other files (as for convert).")
    var base: String?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print JSON on stdout.")
    var json = false

    func run() throws {
        let b = try GGUFFile(path: bundle)
        if base != nil && against == nil { throw CLIError(message: "--base needs --against", code: 2) }
        let ckpt = try against.map { try Checkpoint($0, base: base) }
        let checks = try Verifier.verify(b, against: ckpt, threads: threads)
        let bad = checks.filter { !$0.crcOK }
        let header = HeaderChecksum.check(b)  // nil: a bundle written before the header checksum existed
        var groups: [String: (Int, ErrorStats)] = [:]
        for c in checks {
            if let s = c.stats {
                groups["\(c.component) \(c.type.name)", default: (0, ErrorStats())].0 += 1;
                groups["\(c.component) \(c.type.name)"]!.1.merge(s)
            }
        }
        if json {
            func statsObj(_ s: ErrorStats) -> [String: Any] {
                ["max_abs": s.maxAbs, "rmse": s.rmse, "snr_db": s.snrDB.isFinite ? s.snrDB : 999.0, "cosine": s.cosine]
            }
            let obj: [String: Any] = [
                "file": b.path, "tensors": checks.count, "crc_failures": bad.map(\.name),
                "ok": bad.isEmpty && header != false,
                "header_checksum": header.map { $0 ? "ok" : "mismatch" } ?? "absent",
                "per_tensor": checks.map { c -> [String: Any] in
                    var o: [String: Any] = ["name": c.name, "type": c.type.name, "crc_ok": c.crcOK]
                    if let s = c.stats { o["error"] = statsObj(s) }
                    return o
                },
                "per_group": groups.map {
                    ["group": $0.key, "tensors": $0.value.0, "error": statsObj($0.value.1)] as [String: Any]
                },
            ]
            print(jsonString(obj))
        } else {
            print(
                """
                \(b.path): \(checks.count) tensors, \(checks.count - bad.count) CRC32 ok, \(bad.count) failed; \
                header checksum \(header.map { $0 ? "ok" : "MISMATCH" } ?? "absent (older bundle)")
                """
            )
            for c in bad { print("  CRC32 MISMATCH: \(c.name)") }
            if ckpt != nil {
                let w = min(max(checks.map(\.name.count).max() ?? 10, 10), 72)
                print(
                    "\n" + "tensor".padding(toLength: w, withPad: " ", startingAt: 0)
                        + "  type      max_abs        rmse    snr_dB    cosine")
                for c in checks { if let s = c.stats { print(row(c.name, w, c.type.name, s)) } }
                print(
                    "\n" + "component/type".padding(toLength: 28, withPad: " ", startingAt: 0)
                        + "  n      max_abs        rmse    snr_dB    cosine")
                for (k, v) in groups.sorted(by: { $0.key < $1.key }) { print(row(k, 28, "\(v.0)", v.1)) }
            }
        }
        if !bad.isEmpty || header == false {
            throw QuantizeError.integrity(
                file: b.path,
                problems: bad.map { "tensor '\($0.name)': CRC32 mismatch (data damaged)" }
                    + (header == false ? ["header checksum mismatch (metadata or tensor table damaged)"] : []))
        }
    }

    func row(_ name: String, _ w: Int, _ type: String, _ s: ErrorStats) -> String {
        name.padding(toLength: w, withPad: " ", startingAt: 0) + "  "
            + type.padding(toLength: 5, withPad: " ", startingAt: 0)
            + String(
                format: " %12.4e %11.4e %9.2f %9.6f", s.maxAbs, s.rmse, s.snrDB.isFinite ? s.snrDB : 999.0, s.cosine)
    }
}

import ArgumentParser
import Foundation
import Formats
import Quantize

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a bundle's metadata, components and tensors.")

    @Argument(help: "Bundle (.gguf).")
    var bundle: String

    @Flag(help: "Print JSON on stdout.")
    var json = false

    func run() throws {
        let b = try GGUFFile(path: bundle)
        let m = b.metadata
        let tensors = b.tensors
        var perComponent: [String: (Int, Int)] = [:]
        var perType: [String: (Int, Int)] = [:]
        for t in tensors {
            let c = Verifier.component(of: t.name).rawValue
            perComponent[c, default: (0, 0)].0 += 1; perComponent[c, default: (0, 0)].1 += t.byteCount
            perType[t.type.name, default: (0, 0)].0 += 1; perType[t.type.name, default: (0, 0)].1 += t.byteCount
        }
        let files = m[BundleKeys.sourceFiles]?.stringArray ?? []
        let shas = m[BundleKeys.sourceSHA256]?.stringArray ?? []
        let origins = m[BundleKeys.sourceOrigins]?.stringArray ?? []
        let tied = zip(m[BundleKeys.tiedNames]?.stringArray ?? [], m[BundleKeys.tiedTargets]?.stringArray ?? []).map {
            ($0, $1)
        }
        if json {
            var meta: [String: Any] = [:]
            for k in b.metadataKeys {
                switch m[k]! {
                case .string(let s):
                    meta[k] = s.count > 256 ? ["type": "string", "bytes": s.utf8.count] as [String: Any] : s as Any
                case .array(let t, let a):
                    meta[k] =
                        a.count > 64
                        ? ["type": "array", "element": "\(t)", "count": a.count] as [String: Any]
                        : a.map { $0.stringValue as Any? ?? $0.intValue as Any }
                case let v: meta[k] = v.intValue as Any? ?? v.description
                }
            }
            let obj: [String: Any] = [
                "file": b.path, "gguf_version": b.version, "alignment": b.alignment, "data_offset": b.dataOffset,
                "bytes": b.file.size,
                "metadata": meta,
                "ties": tied.map { ["name": $0.0, "stored_as": $0.1] },
                "sources": files.indices.map { i -> [String: Any] in
                    [
                        "file": files[i], "sha256": i < shas.count ? shas[i] : "",
                        "origin": i < origins.count ? origins[i] : "checkpoint",
                    ]
                },
                "tensors": tensors.map {
                    ["name": $0.name, "type": $0.type.name, "shape": $0.shape, "bytes": $0.byteCount] as [String: Any]
                },
                "components": perComponent.map {
                    ["component": $0.key, "tensors": $0.value.0, "bytes": $0.value.1] as [String: Any]
                },
                "types": perType.map { ["type": $0.key, "tensors": $0.value.0, "bytes": $0.value.1] as [String: Any] },
            ]
            print(jsonString(obj))
            return
        }
        print(
            """
            \(b.path): GGUF v\(b.version), \(fmtBytes(b.file.size)), \(tensors.count) tensors, alignment \
            \(b.alignment)
            """
        )
        for k in [
            BundleKeys.architecture, BundleKeys.name, BundleKeys.formatVersion, BundleKeys.converterVersion,
            BundleKeys.preset,
        ] {
            if let v = m[k] { print("  \(k) = \(v.stringValue ?? v.description)") }
        }
        print("  components: \((m[BundleKeys.components]?.stringArray ?? []).joined(separator: ", "))")
        if let o = m[BundleKeys.overrides]?.stringArray, !o.isEmpty {
            print("  overrides: \(o.joined(separator: " "))")
        }
        let tokens = b.metadataKeys.filter { $0.hasPrefix("lfm2audio.token.") }.map {
            "\($0.dropFirst("lfm2audio.token.".count))=\(m[$0]!.intValue ?? -1)"
        }
        print("  special tokens: \(tokens.joined(separator: " "))")
        if let base = m[BundleKeys.sourceBase]?.stringValue { print("  base model: \(base)") }
        for (i, f) in files.enumerated() {
            let from = i < origins.count ? " (from \(origins[i]))" : ""
            print("  source \(f) sha256 \(i < shas.count ? shas[i] : "?")\(from)")
        }
        if let ig = m[BundleKeys.ignoredFiles]?.stringArray, !ig.isEmpty {
            print("  ignored training state: \(ig.joined(separator: ", "))")
        }
        if !tied.isEmpty {
            print("  tied tensors (stored once, read through the tie table): \(tied.count)")
            for (n, t) in tied { print("    \(n) = \(t)") }
        }
        for k in [
            BundleKeys.config, BundleKeys.hfTokenizer, BundleKeys.chatTemplate, BundleKeys.mimiConfig,
            BundleKeys.detokenizerConfig,
        ] {
            if let s = m[k]?.stringValue { print("  \(k): \(fmtBytes(s.utf8.count))") }
        }
        if let d = m[BundleKeys.dropped]?.stringArray { print("  dropped at conversion: \(d.count) tensors") }
        print("")
        let w = min(max(tensors.map(\.name.count).max() ?? 10, 10), 72)
        print("name".padding(toLength: w, withPad: " ", startingAt: 0) + "  type   shape                      bytes")
        for t in tensors {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            print(
                t.name.padding(toLength: w, withPad: " ", startingAt: 0) + "  "
                    + t.type.name.padding(toLength: 5, withPad: " ", startingAt: 0)
                    + "  " + shape.padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + fmtBytes(t.byteCount))
        }
        print("\ncomponent          tensors        bytes")
        for (c, v) in perComponent.sorted(by: { $0.key < $1.key }) {
            print(pad(c, 18) + lpad("\(v.0)", 8) + lpad(fmtBytes(v.1), 13))
        }
        print("\ntype               tensors        bytes")
        for (c, v) in perType.sorted(by: { $0.key < $1.key }) {
            print(pad(c, 18) + lpad("\(v.0)", 8) + lpad(fmtBytes(v.1), 13))
        }
    }
}

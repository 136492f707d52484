import Foundation
import Formats

/// Importance matrices in conversions: the names an imatrix file uses, and attaching its entries to a plan as the
/// weights of the quantization error (docs/format.md §6.2).
public enum ImatrixNames {
    /// The entry name of a bundle matrix: llama.cpp's name for backbone tensors (what `export-llama` writes, so
    /// llama-quantize reads our file), the bundle name otherwise.
    public static func entry(forBundle name: String) -> String { LlamaExport.llamaName(name) ?? name }

    /// The row width an entry must have for a tensor of this (PyTorch-order) shape: the input columns of the
    /// matrix, every dimension after the first.
    public static func width(of shape: [Int]) -> Int { shape.dropFirst().reduce(1, *) }
}

public struct ImatrixReport: Sendable {
    /// Tensors quantized with weights.
    public var weighted: [String] = []
    /// Tensors with a weighted quantizer but no entry in the file (quantized without weights, as llama-quantize does).
    public var missing: [String] = []
    /// Entries for tensors this output keeps in a type without a weighted path (floats, Q8_0) or does not hold.
    public var unused: [String] = []
}

extension ImportanceMatrix {
    /// Attaches entries to `tensors` (whose names are entry names after `entryName`). Every entry must name a
    /// matrix of the checkpoint (`known`: entry name → input width, the whole model, so that an export of the
    /// backbone accepts a file that also covers the audio components) with that matrix's width, else the file was
    /// made for another model and conversion stops.
    public func apply(
        to tensors: inout [PlannedTensor], known: [String: Int], file: String, checkpoint: String,
        entryName: (String) -> String
    ) throws -> ImatrixReport {
        for (name, e) in entries.sorted(by: { $0.key < $1.key }) {
            guard let w = known[name] else {
                throw ImatrixError.unknownEntry(file: file, entry: name, checkpoint: checkpoint)
            }
            if e.sums.count != w {
                throw ImatrixError.widthMismatch(file: file, entry: name, tensor: name, expected: w, got: e.sums.count)
            }
        }
        var report = ImatrixReport()
        var used = Set<String>()
        for i in tensors.indices {
            let t = tensors[i]
            let name = entryName(t.name)
            guard t.shape.count >= 2, Codec.hasWeightedQuantizer(t.type) else { continue }
            guard let e = entries[name] else {
                report.missing.append(t.name)
                continue
            }
            let width = ImatrixNames.width(of: t.shape)
            guard e.sums.count == width else {
                throw ImatrixError.widthMismatch(
                    file: file, entry: name, tensor: t.name, expected: width, got: e.sums.count)
            }
            tensors[i].importance = e.weights
            tensors[i].reason += "; imatrix-weighted"
            report.weighted.append(t.name)
            used.insert(name)
        }
        report.unused = entries.keys.filter { !used.contains($0) }.sorted()
        return report
    }

    /// Every matrix of a checkpoint by entry name, with its input width: the bundle plan's tensors of two or more
    /// dimensions.
    public static func knownMatrices(_ plan: ConversionPlan) -> [String: Int] {
        var out: [String: Int] = [:]
        for t in plan.tensors where t.shape.count >= 2 {
            out[ImatrixNames.entry(forBundle: t.name)] = ImatrixNames.width(of: t.shape)
        }
        return out
    }
}

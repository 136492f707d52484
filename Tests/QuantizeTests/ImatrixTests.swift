import XCTest
import TestSupport
import Foundation
@testable import Formats
@testable import Quantize

final class ImatrixTests: XCTestCase {
    /// Weighted Q4_0 / Q3_K / Q4_K / Q5_K / Q6_K bytes equal ggml's: rows of random values with random importance
    /// weights (some zero) quantized by ggml_quantize_chunk of llama.cpp's libggml-base
    /// (scripts/bench/imatrix_goldens.c).
    func testWeightedQuantizersByteIdenticalToGGML() throws {
        let g = try SafetensorsFile(path: fixtures + "/quant/weighted_goldens.safetensors")
        var seen: [GGMLType: Int] = [:]
        for name in g.names where name.hasSuffix(".input") {
            let base = String(name.dropLast(".input".count))
            let type = try XCTUnwrap(GGMLType(name: String(base.prefix { $0 != "." })), base)
            let x = Array(g.tensors[name]!.bytes.bindMemory(to: Float.self))
            let w = Array(try XCTUnwrap(g.tensors[base + ".weights"]).bytes.bindMemory(to: Float.self))
            let want = Array(try XCTUnwrap(g.tensors[base + ".bytes"]).bytes)
            var got = [UInt8](repeating: 0xAA, count: type.byteCount(elements: x.count))
            XCTAssertEqual(got.count, want.count, base)
            x.withUnsafeBufferPointer { s in
                got.withUnsafeMutableBytes {
                    Codec.encode(s.baseAddress!, count: x.count, as: type, weights: w, into: $0.baseAddress!)
                }
            }
            XCTAssertEqual(got, want, base)
            // the weights matter: the unweighted bytes differ for these inputs
            var plain = [UInt8](repeating: 0, count: got.count)
            x.withUnsafeBufferPointer { s in
                plain.withUnsafeMutableBytes {
                    Codec.encode(s.baseAddress!, count: x.count, as: type, into: $0.baseAddress!)
                }
            }
            if base.hasSuffix("case0") { XCTAssertNotEqual(plain, want, base) }
            seen[type, default: 0] += 1
        }
        for t in [GGMLType.q4_0, .q3_K, .q4_K, .q5_K, .q6_K] { XCTAssertEqual(seen[t], 5, "\(t) goldens") }
        XCTAssertFalse(Codec.hasWeightedQuantizer(.q8_0))
        XCTAssertTrue(Codec.hasWeightedQuantizer(.q4_K))
    }

    /// Weighted quantization lowers the weighted error it minimizes (against the unweighted quantizer) on average.
    func testWeightsLowerTheWeightedError() {
        var rng = SplitMix(seed: 7)
        let cols = 512, rows = 16
        let x = (0..<(rows * cols)).map { _ in rng.normal() }
        // a few columns carry most of the importance
        let w = (0..<cols).map { $0 % 16 == 0 ? Float(100) : Float(0.1) }
        for type in [GGMLType.q4_0, .q3_K, .q4_K, .q5_K, .q6_K] {
            func err(_ weighted: Bool) -> Double {
                var q = [UInt8](repeating: 0, count: type.byteCount(elements: x.count))
                var y = [Float](repeating: 0, count: x.count)
                x.withUnsafeBufferPointer { s in
                    q.withUnsafeMutableBytes {
                        if weighted {
                            Codec.encode(s.baseAddress!, count: x.count, as: type, weights: w, into: $0.baseAddress!)
                        } else {
                            Codec.encode(s.baseAddress!, count: x.count, as: type, into: $0.baseAddress!)
                        }
                    }
                }
                q.withUnsafeBytes { b in
                    y.withUnsafeMutableBufferPointer {
                        Codec.decode(b.baseAddress!, count: x.count, type: type, into: $0.baseAddress!)
                    }
                }
                var e = 0.0
                for i in x.indices { e += Double(w[i % cols]) * Double((x[i] - y[i]) * (x[i] - y[i])) }
                return e
            }
            XCTAssertLessThan(err(true), err(false), "\(type)")
        }
    }

    /// The GGUF imatrix layout: write → read gives the same entries and keys; the header follows llama.cpp's
    /// (general.type, imatrix.* keys, `<name>.in_sum2` [cols, 1] and `<name>.counts` [1, 1] in F32, sorted names).
    func testImatrixFileRoundTrip() throws {
        let m = ImportanceMatrix(
            entries: [
                "blk.0.ffn_down.weight": .init(sums: (0..<64).map { Float($0) * 0.5 }, count: 12),
                "conformer.layers.0.feed_forward1.linear1.weight": .init(sums: [1, 2, 3, 4], count: 3),
                "depth_linear.weight": .init(sums: [0, 0], count: 0),
            ], datasets: ["/calib"], chunkCount: 1, chunkSize: 512)
        var withLong = m
        let longName = "mimi.decoder_transformer.transformer.layers.7.self_attn.in_proj_weight"
        withLong.entries[longName] = .init(sums: [5, 6], count: 2)
        let path = tmpDir("imx") + "/x.imatrix.gguf"
        try m.write(to: path, overwrite: false)
        let back = try ImportanceMatrix(path: path)
        XCTAssertEqual(back, m)
        let g = try GGUFFile(path: path)
        XCTAssertEqual(
            g.metadataKeys, ["general.type", "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"])
        XCTAssertEqual(g.metadata["general.type"]?.stringValue, "imatrix")
        XCTAssertEqual(g.alignment, 32)
        XCTAssertEqual(
            g.tensors.map(\.name),
            [
                "blk.0.ffn_down.weight.in_sum2", "blk.0.ffn_down.weight.counts",
                "conformer.layers.0.feed_forward1.linear1.weight.in_sum2",
                "conformer.layers.0.feed_forward1.linear1.weight.counts",
                "depth_linear.weight.in_sum2", "depth_linear.weight.counts",
            ])
        XCTAssertEqual(g.tensors[0].dims, [64, 1])
        XCTAssertEqual(g.tensors[1].dims, [1, 1])
        XCTAssertTrue(g.tensors.allSatisfy { $0.type == .f32 })
        // weights as llama-quantize derives them: sum / count, 1 where nothing was seen
        XCTAssertEqual(back.entries["blk.0.ffn_down.weight"]!.weights[3], 1.5 / 12)
        XCTAssertEqual(back.entries["depth_linear.weight"]!.weights, [1, 1])
        // a name over ggml's 63 bytes goes under an alias, and comes back under its own name
        let lp = tmpDir("imx") + "/long.imatrix.gguf"
        try withLong.write(to: lp, overwrite: false)
        XCTAssertEqual(try ImportanceMatrix(path: lp), withLong)
        let lg = try GGUFFile(path: lp)
        XCTAssertTrue(lg.tensors.allSatisfy { $0.name.utf8.count <= 63 })
        XCTAssertTrue(lg.tensors.contains { $0.name == "imatrix_long.0.in_sum2" })
        XCTAssertEqual(lg.metadata["lfm.imatrix.long_names"]?.stringArray, [longName])
        // not an imatrix
        let other = tmpDir("imx") + "/o.gguf"
        var h = GGUF.header(metadata: [("general.type", .string("model"))], tensors: [])
        h.append(Data(count: 32 - h.count % 32))
        try h.write(to: URL(fileURLWithPath: other))
        XCTAssertThrowsError(try ImportanceMatrix(path: other)) { e in
            guard case ImatrixError.notImatrix = e else { return XCTFail("\(e)") }
        }
    }

    /// Applying a file: entries attach to the quantized tensors by entry name; an unknown name or a wrong width
    /// stops with an error naming the entry.
    func testApplyMatchesNamesAndWidths() throws {
        let src = tmpDir("imx")
        func planned(_ name: String, _ shape: [Int], _ type: GGMLType) -> PlannedTensor {
            PlannedTensor(
                name: name, shape: shape, role: .matrix, component: .backbone, type: type, reason: "test",
                source: .derived(inputs: [], compute: { [] }))
        }
        var ts = [
            planned("lfm.layers.0.feed_forward.w2.weight", [32, 256], .q4_K),
            planned("lfm.layers.0.feed_forward.w1.weight", [256, 32], .q8_0),
            planned("conformer.layers.0.feed_forward1.linear1.weight", [64, 64], .q4_0),
        ]
        let known = [
            "blk.0.ffn_down.weight": 256, "blk.0.ffn_gate.weight": 32,
            "conformer.layers.0.feed_forward1.linear1.weight": 64,
        ]
        let ok = ImportanceMatrix(entries: [
            "blk.0.ffn_down.weight": .init(sums: [Float](repeating: 2, count: 256), count: 4),
            "blk.0.ffn_gate.weight": .init(sums: [Float](repeating: 1, count: 32), count: 4),
        ])
        let r = try ok.apply(
            to: &ts, known: known, file: src, checkpoint: "ck", entryName: ImatrixNames.entry(forBundle:))
        XCTAssertEqual(r.weighted, ["lfm.layers.0.feed_forward.w2.weight"])
        XCTAssertEqual(r.missing, ["conformer.layers.0.feed_forward1.linear1.weight"])
        XCTAssertEqual(r.unused, ["blk.0.ffn_gate.weight"])  // Q8_0 has no weighted path
        XCTAssertEqual(ts[0].importance, [Float](repeating: 0.5, count: 256))
        XCTAssertNil(ts[1].importance)

        let unknown = ImportanceMatrix(entries: ["blk.9.ffn_down.weight": .init(sums: [1], count: 1)])
        XCTAssertThrowsError(
            try unknown.apply(to: &ts, known: known, file: "f", checkpoint: "ck", entryName: { $0 })
        ) { e in
            XCTAssertEqual(
                e as? ImatrixError, .unknownEntry(file: "f", entry: "blk.9.ffn_down.weight", checkpoint: "ck"))
            XCTAssertTrue("\(e)".contains("blk.9.ffn_down.weight"))
        }
        let narrow = ImportanceMatrix(entries: ["blk.0.ffn_down.weight": .init(sums: [1, 2], count: 1)])
        XCTAssertThrowsError(
            try narrow.apply(to: &ts, known: known, file: "f", checkpoint: "ck", entryName: { $0 })
        ) { e in
            XCTAssertEqual(
                e as? ImatrixError,
                .widthMismatch(
                    file: "f", entry: "blk.0.ffn_down.weight", tensor: "blk.0.ffn_down.weight", expected: 256, got: 2))
        }
        XCTAssertEqual(
            ImatrixNames.entry(forBundle: "lfm.layers.3.conv.in_proj.weight"), "blk.3.shortconv.in_proj.weight")
        XCTAssertEqual(ImatrixNames.entry(forBundle: "depth_linear.weight"), "depth_linear.weight")
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    mutating func normal() -> Float {
        let a = max(uniform(), 1e-300), b = uniform()
        return Float((-2 * log(a)).squareRoot() * cos(2 * Double.pi * b))
    }
}

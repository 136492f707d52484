import XCTest
import TestSupport
import Foundation
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
import RuntimeTools

/// A copy of a fixture checkpoint with the detokenizer weights regenerated from their recipe.
func fixtureWithDetokenizer(_ name: String) throws -> String {
    let dir = tmpDir(name) + "/model"
    try FileManager.default.copyItem(atPath: fixtures + "/\(name)/model", toPath: dir)
    _ = try DetokenizerRecipe.materialize(checkpoint: dir)
    return dir
}

final class ConvertTests: XCTestCase {
    func convert(
        _ dir: String, _ preset: Preset, threads: Int = 2, keepAll: Bool = false
    ) throws -> (String, ConversionPlan) {
        let ckpt = try Checkpoint(folder: dir)
        let plan = try Planner.plan(ckpt, recipe: Recipe(preset: preset), keepAll: keepAll)
        let out = tmpDir("out") + "/b.gguf"
        _ = try Converter.convert(ckpt, plan: plan, to: out, options: ConvertOptions(threads: threads))
        return (out, plan)
    }

    func testBothConfigsConvertWithEveryPreset() throws {
        for name in ["tiny-a", "tiny-b"] {
            let dir = try fixtureWithDetokenizer(name)
            for preset in Preset.allCases {
                let (out, plan) = try convert(dir, preset)
                let b = try ModelBundle(path: out)
                XCTAssertEqual(
                    b.components,
                    ["backbone", "conformer", "adapter", "depthformer", "audio_embedding", "mimi", "detokenizer"], name)
                XCTAssertEqual(b.gguf.tensors.count, plan.tensors.count)
                XCTAssertEqual(b.gguf.metadata[BundleKeys.preset]?.stringValue, preset.rawValue)
                XCTAssertEqual(b.gguf.tensors.map(\.name), plan.tensors.map(\.name))
                // every CRC matches
                let checks = try Verifier.verify(b.gguf, threads: 2)
                XCTAssertTrue(checks.allSatisfy(\.crcOK), "\(name) \(preset)")
                // no tensor is both kept and dropped; every dropped tensor has a reason
                XCTAssertTrue(Set(plan.dropped.map(\.name)).isDisjoint(with: plan.tensors.map(\.name)))
                XCTAssertTrue(plan.dropped.allSatisfy { !$0.reason.isEmpty })
            }
        }
    }

    /// f32 bundles hold every source tensor exactly (bf16 → f32 is exact); derived tensors match their recipe.
    func testF32BundleEqualsSource() throws {
        let dir = try fixtureWithDetokenizer("tiny-a")
        let (out, plan) = try convert(dir, .f32)
        let b = try GGUFFile(path: out)
        let checks = try Verifier.verify(b, against: try Checkpoint(folder: dir), threads: 2)
        XCTAssertEqual(checks.count, plan.tensors.count)
        for c in checks {
            let s = try XCTUnwrap(c.stats, c.name)
            XCTAssertEqual(s.maxAbs, 0, c.name)
        }
        // spot check: a stored tensor's bytes are the source values as float32
        let ckpt = try Checkpoint(folder: dir)
        let src = ckpt.model["lfm.layers.1.self_attn.q_proj.weight"]!
        let t = b.tensor("lfm.layers.1.self_attn.q_proj.weight")!
        XCTAssertEqual(t.type, .f32)
        XCTAssertEqual(t.shape, src.shape)
        let got = Array(b.bytes(of: t).bindMemory(to: Float.self))
        let want = Array(src.bytes.bindMemory(to: UInt16.self)).map { Float(bitPattern: UInt32($0) << 16) }
        XCTAssertEqual(got, want)
    }

    func testFoldedAndDerivedTensors() throws {
        let dir = fixtures + "/tiny-a/model"
        let ckpt = try Checkpoint(folder: dir)
        let (out, _) = try convert(dir, .f32)
        let b = try GGUFFile(path: out)
        XCTAssertNil(b.tensor("conformer.layers.0.conv.batch_norm.running_var"))
        XCTAssertNil(b.tensor("mimi.encoder.model.0.conv.conv.weight"))
        XCTAssertNil(b.tensor("mimi.quantizer.rvq_rest.vq.layers.7._codebook.embedding_sum"))
        // batch norm folding, recomputed here in double precision
        let f = { (n: String) in Planner.floats(ckpt.model["conformer.layers.1.conv." + n]!) }
        let w = f("depthwise_conv.weight"), bias = f("depthwise_conv.bias"), g = f("batch_norm.weight"),
            beta = f("batch_norm.bias")
        let mean = f("batch_norm.running_mean"), v = f("batch_norm.running_var")
        let fw = Array(b.bytes(of: b.tensor(BundleNames.foldedDepthwise(1) + ".weight")!).bindMemory(to: Float.self))
        let fb = Array(b.bytes(of: b.tensor(BundleNames.foldedDepthwise(1) + ".bias")!).bindMemory(to: Float.self))
        let k = ckpt.config.encoder.convKernelSize
        for c in 0..<ckpt.config.encoder.dModel {
            let s = Double(g[c]) / (Double(v[c]) + 1e-5).squareRoot()
            XCTAssertEqual(Double(fb[c]), (Double(bias[c]) - Double(mean[c])) * s + Double(beta[c]), accuracy: 1e-6)
            for j in 0..<k { XCTAssertEqual(Double(fw[c * k + j]), Double(w[c * k + j]) * s, accuracy: 1e-6) }
        }
        // Mimi centroids
        let cb = BundleNames.mimiCodebook(4)
        XCTAssertEqual(cb, "quantizer.rvq_rest.vq.layers.3._codebook.")
        let sum = Planner.floats(ckpt.mimi!.tensors[cb + "embedding_sum"]!),
            use = Planner.floats(ckpt.mimi!.tensors[cb + "cluster_usage"]!)
        let cent = Array(b.bytes(of: b.tensor(BundleNames.mimiCentroids(4))!).bindMemory(to: Float.self))
        let dim = ckpt.mimi!.config.quantizer.dimension
        for i in stride(from: 0, to: sum.count, by: 97) { XCTAssertEqual(cent[i], sum[i] / max(use[i / dim], 1e-5)) }
        // --keep-all keeps what was dropped
        let (outAll, planAll) = try convert(dir, .f32, keepAll: true)
        XCTAssertTrue(planAll.dropped.isEmpty)
        XCTAssertNotNil(try GGUFFile(path: outAll).tensor("mimi.encoder.model.0.conv.conv.weight"))
    }

    func testQuantizedBundlesReportBoundedError() throws {
        let dir = fixtures + "/tiny-b/model"
        for (preset, minSNR) in [
            (Preset.q8_0, 35.0), (.q4_0, 14.0), (.f16, 55.0), (.bf16, 40.0), (.q3_k_m, 12.0), (.q4_k_m, 16.0),
            (.q5_k_m, 22.0), (.q6_k, 28.0),
        ] {
            let (out, _) = try convert(dir, preset)
            let checks = try Verifier.verify(try GGUFFile(path: out), against: try Checkpoint(folder: dir), threads: 2)
            for c in checks {
                if let s = c.stats, s.sumSqRef > 0 {
                    XCTAssertGreaterThan(s.snrDB, minSNR, "\(preset) \(c.name) \(c.type)")
                }
            }
            XCTAssertTrue(checks.contains { $0.type == preset.matrixType })
        }
    }

    func testOutputIsDeterministicAcrossThreadCounts() throws {
        let dir = fixtures + "/tiny-a/model"
        let (a, _) = try convert(dir, .q4_0, threads: 1)
        let (b, _) = try convert(dir, .q4_0, threads: 2)
        XCTAssertEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: b))
    }

    func testBitFlipIsCaught() throws {
        let (out, _) = try convert(fixtures + "/tiny-a/model", .q8_0)
        let g = try GGUFFile(path: out)
        let t = g.tensor("lfm.layers.2.feed_forward.w2.weight")!
        var data = try Data(contentsOf: URL(fileURLWithPath: out))
        data[g.dataOffset + t.offset + 17] ^= 0x08
        let damaged = tmpDir("flip") + "/d.gguf"
        try data.write(to: URL(fileURLWithPath: damaged))
        let checks = try Verifier.verify(try GGUFFile(path: damaged), threads: 2)
        XCTAssertEqual(checks.filter { !$0.crcOK }.map(\.name), ["lfm.layers.2.feed_forward.w2.weight"])
    }

    /// The bundle is a valid GGUF for the `gguf` Python package's reader (installed by .ci/run).
    func testGGUFPackageReadsBundle() throws {
        let (out, plan) = try convert(try fixtureWithDetokenizer("tiny-b"), .q4_0)
        let script = """
            import sys
            from gguf import GGUFReader
            r = GGUFReader(sys.argv[1])
            assert r.fields['general.architecture'].contents() == 'lfm2-audio'
            for t in r.tensors:
                print(t.name, t.tensor_type.name, ','.join(str(int(d)) for d in t.shape), int(t.n_bytes))
            """
        let r = try runProcess("/usr/bin/env", ["python3", "-c", script, out])
        XCTAssertEqual(r.status, 0, "python3 with the gguf package must be installed (see README): \(r.err)")
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.count, plan.tensors.count)
        for (line, t) in zip(lines, plan.tensors) {
            let f = line.split(separator: " ")
            XCTAssertEqual(String(f[0]), t.name)
            XCTAssertEqual(String(f[1]), t.type.name)
            XCTAssertEqual(String(f[2]), t.shape.reversed().map(String.init).joined(separator: ","))
            XCTAssertEqual(Int(f[3]), t.byteCount)
        }
    }

    func testMemoryStaysBounded() throws {
        // Streaming: one chunk of rows per worker; scratch is independent of tensor size.
        XCTAssertLessThanOrEqual(Converter.chunkElements, 1 << 20)
        let dir = try fixtureWithDetokenizer("tiny-a")
        let before = MemoryMonitor.current().anon
        _ = try convert(dir, .q8_0)
        XCTAssertLessThan(MemoryMonitor.current().anon - before, 64 << 20)
    }
}

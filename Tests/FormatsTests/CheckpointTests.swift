import XCTest
import TestSupport
import Foundation
@testable import Formats

final class ConfigTests: XCTestCase {
    func testFixtureConfigsDeriveWidths() throws {
        let a = try Checkpoint(folder: fixtures + "/tiny-a/model")
        XCTAssertEqual(a.config.lfm.hiddenSize, 64)
        XCTAssertEqual(a.config.lfm.ffnWidth, 192)
        XCTAssertEqual(a.config.lfm.layerTypes, ["conv", "full_attention", "conv", "full_attention"])
        XCTAssertEqual(a.config.encoder.subsampledFeatures, 16)
        XCTAssertEqual(a.specialTokenIds["<|audio_start|>"], 128)
        XCTAssertNotNil(a.mimi)
        XCTAssertNil(a.detokenizer, "tiny fixtures ship only the weights recipe")
        XCTAssertFalse(a.warnings.isEmpty)
        let b = try Checkpoint(folder: fixtures + "/tiny-b/model")
        XCTAssertNotEqual(b.config.lfm.layerTypes, a.config.lfm.layerTypes)
    }

    func testKeySpellingVariants() throws {
        let legacy =
            #"{"hidden_size": 64, "num_hidden_layers": 3, "block_ff_dim": 300, "intermediate_size": 999, "#
            + #""full_attn_idxs": [1], "rope_theta": 5000.0, "tie_embedding": false, "block_multiple_of": 64}"#
        let c = try decodeConfig(LFM2Config.self, from: Data(legacy.utf8), file: "c.json")
        XCTAssertEqual(c.intermediateSize, 300)
        XCTAssertEqual(c.layerTypes, ["conv", "full_attention", "conv"])
        XCTAssertEqual(c.ropeTheta, 5000)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(c.ffnWidth, 256)  // int(2*300/3)=200 → round up to 64 → 256
        let modern =
            #"{"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 96, "#
            + #""layer_types": ["conv","full_attention"], "#
            + #""rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}, "#
            + #""tie_word_embeddings": true, "block_auto_adjust_ff_dim": false}"#
        let m = try decodeConfig(LFM2Config.self, from: Data(modern.utf8), file: "c.json")
        XCTAssertEqual(m.ropeTheta, 1e6)
        XCTAssertEqual(m.ffnWidth, 96)
        let nullMult = #"{"intermediate_size": 300, "block_ffn_dim_multiplier": null, "num_hidden_layers": 1}"#
        XCTAssertEqual(try decodeConfig(LFM2Config.self, from: Data(nullMult.utf8), file: "c.json").ffnWidth, 200)
    }

    func testMalformedConfigsNameTheKey() {
        func check(_ json: String, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(
                try decodeConfig(LFM2AudioConfig.self, from: Data(json.utf8), file: "cfg.json"), line: line
            ) { e in
                XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains("cfg.json"), "\(e)", line: line)
            }
        }
        check("{", "invalid JSON")
        check(#"{"codebooks": 8}"#, "encoder")
        check(
            #"{"codebooks": "eight", "encoder": {}, "lfm": {}, "depthformer": {"layers":1,"dim":64,"tie":true}}"#,
            "codebooks")
        check(
            #"{"codebooks": 8, "encoder": {"d_model": "x"}, "lfm": {}, "#
                + #""depthformer": {"layers":1,"dim":64,"tie":true}}"#,
            "encoder.d_model")
    }
}

final class CheckpointLayoutTests: XCTestCase {
    let src = fixtures + "/tiny-a/model"

    func testHubCacheSnapshotAndRepoId() throws {
        let cache = tmpDir("hub")
        let repo = cache + "/models--TestOrg--Tiny-A"
        let fm = FileManager.default
        try fm.createDirectory(atPath: repo + "/blobs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: repo + "/refs", withIntermediateDirectories: true)
        let snap = repo + "/snapshots/abc123"
        try fm.createDirectory(atPath: snap, withIntermediateDirectories: true)
        for f in try fm.subpathsOfDirectory(atPath: src) {
            var isDir: ObjCBool = false
            fm.fileExists(atPath: src + "/" + f, isDirectory: &isDir)
            if isDir.boolValue {
                try fm.createDirectory(atPath: snap + "/" + f, withIntermediateDirectories: true); continue
            }
            let blob = repo + "/blobs/" + f.replacingOccurrences(of: "/", with: "_") + ".blob"
            try fm.copyItem(atPath: src + "/" + f, toPath: blob)
            try fm.createSymbolicLink(atPath: snap + "/" + f, withDestinationPath: blob)
        }
        try "abc123".write(toFile: repo + "/refs/main", atomically: true, encoding: .utf8)
        let plain = try Checkpoint(folder: src)
        for spec in [snap, repo] {
            let c = try Checkpoint(spec, environment: ["HOME": "/nonexistent"])
            XCTAssertEqual(c.root, snap)
            XCTAssertEqual(c.model.names, plain.model.names)
        }
        let byId = try Checkpoint("TestOrg/Tiny-A", environment: ["HF_HUB_CACHE": cache, "HOME": "/nonexistent"])
        XCTAssertEqual(byId.root, snap)
        let viaHome = try Checkpoint(
            "TestOrg/Tiny-A", environment: ["HF_HOME": tmpDir("none"), "HOME": "/nonexistent", "HF_HUB_CACHE": cache])
        XCTAssertEqual(viaHome.root, snap)
        XCTAssertThrowsError(
            try Checkpoint("TestOrg/Missing", environment: ["HF_HUB_CACHE": cache, "HOME": "/nonexistent"])
        ) { e in
            XCTAssertTrue("\(e)".contains("never downloads"), "\(e)")
        }
    }

    func testShardedMatchesSingleFile() throws {
        let dir = tmpDir("shard")
        let fm = FileManager.default
        for f in try fm.contentsOfDirectory(atPath: src) where f != "model.safetensors" {
            try fm.copyItem(atPath: src + "/" + f, toPath: dir + "/" + f)
        }
        let single = try SafetensorsFile(path: src + "/model.safetensors")
        let names = single.names
        var map: [String: String] = [:]
        for (i, part) in [Array(names.prefix(names.count / 2)), Array(names.dropFirst(names.count / 2))].enumerated() {
            let file = "model-0000\(i + 1)-of-00002.safetensors"
            try SafetensorsWriter.write(
                part.map { n in
                    let t = single.tensors[n]!
                    return .init(name: n, dtype: t.dtype, shape: t.shape, data: Data(t.bytes))
                }, to: dir + "/" + file)
            for n in part { map[n] = file }
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": map])
        fm.createFile(atPath: dir + "/model.safetensors.index.json", contents: index)
        let c = try Checkpoint(folder: dir)
        XCTAssertEqual(c.model.names, names.sorted())
        XCTAssertEqual(c.model.files.count, 2)
        for n in names { XCTAssertEqual(Data(c.model[n]!.bytes), Data(single.tensors[n]!.bytes), n) }

        // An index that maps a tensor to the wrong shard is refused with the tensor named.
        var wrong = map
        wrong[names[0]] = "model-00002-of-00002.safetensors"
        fm.createFile(
            atPath: dir + "/model.safetensors.index.json",
            contents: try JSONSerialization.data(withJSONObject: ["weight_map": wrong]))
        XCTAssertThrowsError(try Checkpoint(folder: dir)) { e in XCTAssertTrue("\(e)".contains(names[0]), "\(e)") }
    }
}

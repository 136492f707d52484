import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// Hostile inputs across the formats a user feeds the runtime: each must give a clear error naming the input (no
/// crash, no hang) with memory bounded (absurd sizes are refused before anything is allocated). The safetensors,
/// GGUF and checkpoint cases live in FormatsTests/ConvertTests; docs/hardening.md lists them all.
final class HostileInputTests: XCTestCase {
    /// Runs `body`, expects an error whose text contains `fragment`, and checks that peak memory grew < 256 MB.
    func expectError(_ what: String, _ fragment: String, line: UInt = #line, _ body: () throws -> Void) {
        let before = MemoryMonitor.current().hwm
        XCTAssertThrowsError(try body(), what, line: line) { e in
            XCTAssertTrue("\(e)".lowercased().contains(fragment.lowercased()), "\(what): \(e)", line: line)
        }
        XCTAssertLessThan(MemoryMonitor.current().hwm - before, 256 << 20, "\(what): memory", line: line)
    }

    func wav(
        format: Int = 1, channels: Int = 1, rate: Int = 16000, bits: Int = 16, blockAlign: Int? = nil,
        dataSize: Int? = nil, payload: Data = Data(count: 64), extra: Data = Data()
    ) -> Data {
        var d = Data()
        func u32(_ v: Int) { var x = UInt32(truncatingIfNeeded: v).littleEndian; d.append(Data(bytes: &x, count: 4)) }
        func u16(_ v: Int) { var x = UInt16(truncatingIfNeeded: v).littleEndian; d.append(Data(bytes: &x, count: 2)) }
        d.append(contentsOf: Array("RIFF".utf8)); u32(36 + payload.count + extra.count);
        d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(format); u16(channels); u32(rate)
        u32(rate * channels * bits / 8); u16(blockAlign ?? channels * bits / 8); u16(bits)
        d.append(extra)
        d.append(contentsOf: Array("data".utf8)); u32(dataSize ?? payload.count); d.append(payload)
        return d
    }

    func testHostileWAVs() {
        let P = { (d: Data) in { _ = try WAVReader.parse(d, name: "x.wav") } }
        expectError("65 channels", "channels", P(wav(channels: 65)))
        expectError("rate 2^31", "out of range", P(wav(rate: 1 << 31)))
        expectError("ADPCM", "format 2", P(wav(format: 2)))
        expectError("20-bit", "20-bit", P(wav(bits: 20)))
        expectError("float 16-bit", "16-bit float", P(wav(format: 3, bits: 16)))
        expectError("block align too small", "block align", P(wav(channels: 2, blockAlign: 3)))
        expectError("data size beyond the file", "truncated", P(wav(dataSize: 0x7FFF_FFF0)))
        var list = Data(); list.append(contentsOf: Array("LIST".utf8));
        list.append(contentsOf: [0xF0, 0xFF, 0xFF, 0xFF])
        expectError("absurd LIST chunk size", "no data chunk", P(wav(extra: list)))
        var nanPayload = Data();
        for v: Float in [0.5, .nan, 0.1, 0] {
            var b = v.bitPattern.littleEndian; nanPayload.append(Data(bytes: &b, count: 4))
        }
        expectError("NaN sample", "finite", P(wav(format: 3, bits: 32, payload: nanPayload)))
        var infPayload = Data();
        for v: Double in [0.5, .infinity] {
            var b = v.bitPattern.littleEndian; infPayload.append(Data(bytes: &b, count: 8))
        }
        expectError("infinite sample", "finite", P(wav(format: 3, bits: 64, payload: infPayload)))
        expectError("RIFF only", "not a WAV", P(Data("RIFF".utf8)))
        expectError("no fmt chunk", "no fmt", P(Data("RIFF\u{24}\0\0\0WAVEdata\u{4}\0\0\0abcd".utf8)))
        expectError("missing file", "cannot read", { _ = try WAVReader.read("/nonexistent/q.wav") })
    }

    func testHostileCodesJSON() {
        let P = { (s: String) in { _ = try CodesJSON.parse(Data(s.utf8), name: "codes.json") } }
        expectError("empty", "codes.json", P(""))
        expectError("unterminated", "codes.json", P("[[1,2"))
        expectError("object", "list of frames", P("{\"a\":1}"))
        expectError("frames not lists", "not a list", P("[1,2,3]"))
        expectError("string code", "0…2048", P("[[\"a\"]]"))
        expectError("fraction", "0…2048", P("[[1.5]]"))
        expectError("negative", "0…2048", P("[[-1]]"))
        expectError("2049", "0…2048", P("[[2049]]"))
        expectError("1e300", "0…2048", P("[[1e300]]"))
        expectError("65 codes", "65 codes", P("[[" + Array(repeating: "1", count: 65).joined(separator: ",") + "]]"))
        expectError(
            "nesting bomb", "codes.json",
            P(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)))
        expectError("null", "list of frames", P("null"))
    }

    func testHostileConfigs() throws {
        let good = try String(contentsOfFile: fixtures + "/tiny-a/model/config.json", encoding: .utf8)
        let P = { (s: String) in { _ = try decodeConfig(LFM2AudioConfig.self, from: Data(s.utf8), file: "config.json") }
        }
        expectError("not JSON", "config.json", P("{codebooks: 8"))
        expectError("array", "config.json", P("[1,2]"))
        expectError(
            "no codebooks", "codebooks", P(good.replacingOccurrences(of: "\"codebooks\"", with: "\"codebookz\"")))
        expectError(
            "codebooks a string", "codebooks",
            P(good.replacingOccurrences(of: "\"codebooks\": 8", with: "\"codebooks\": \"8\"")))
        expectError(
            "nesting bomb", "config.json",
            P(String(repeating: "{\"a\":", count: 50_000) + "1" + String(repeating: "}", count: 50_000)))
        // values the config parses but the runtime cannot build: caught by validation before any allocation
        let bundle = try Bundles.path("tiny-a", .f32)
        let cfgs = [("negative layers", "\"n_layers\": -1"), ("huge vocab", "\"vocab_size\": 1099511627776")]
        for (what, patch) in cfgs {
            let key = patch.components(separatedBy: ":")[0]
            let s = good.replacingOccurrences(of: #"\#(key): *-?[0-9]+"#, with: patch, options: .regularExpression)
            XCTAssertNotEqual(s, good, what)
            expectError(what, "config.json") {
                let c = try decodeConfig(LFM2AudioConfig.self, from: Data(s.utf8), file: "config.json")
                try c.validate(file: "config.json")
            }
        }
        _ = bundle
    }

    func testHostileTokenizers() {
        let P = { (s: String) in { _ = try Tokenizer(json: Data(s.utf8), file: "tokenizer.json") } }
        expectError("not JSON", "tokenizer.json", P("{"))
        expectError("no model", "tokenizer.json", P("{\"added_tokens\": []}"))
        expectError(
            "vocab not an object", "tokenizer.json",
            P("{\"model\": {\"type\": \"BPE\", \"vocab\": [1], \"merges\": []}}"))
        expectError(
            "negative id", "tokenizer.json",
            P("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -5}, \"merges\": []}}"))
        expectError(
            "huge id", "tokenizer.json",
            P("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 4611686018427387904}, \"merges\": []}}"))
    }

    /// Damaged bundles are refused at open with the file named.
    func testDamagedBundles() throws {
        let path = try Bundles.path("tiny-b", .q8_0)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let g = try GGUFFile(path: path)
        let dir = tmpDir("damaged")
        func open(_ d: Data, _ name: String) -> () throws -> Void {
            let p = dir + "/" + name
            FileManager.default.createFile(atPath: p, contents: d)
            return { _ = try LFMModel(path: p, options: ModelOptions(threads: 1, contextLimit: 64)) }
        }
        expectError("truncated data", "b1.gguf", open(data.prefix(g.dataOffset + 100), "b1.gguf"))
        expectError("truncated header", "b2.gguf", open(data.prefix(200), "b2.gguf"))
        var v = data; v[4] = 9
        expectError("version 9", "b3.gguf", open(v, "b3.gguf"))
        var arch = data
        if let r = arch.range(of: Data("lfm2-audio".utf8)) { arch.replaceSubrange(r, with: Data("lfm2-audiX".utf8)) }
        expectError("architecture", "b4.gguf", open(arch, "b4.gguf"))
        var cfg = data
        if let r = cfg.range(of: Data("\"codebooks\"".utf8)) {
            cfg.replaceSubrange(r, with: Data("\"codebookz\"".utf8))
        }
        expectError("config metadata", "b5.gguf", open(cfg, "b5.gguf"))
        var name = data
        if let r = name.range(of: Data("lfm.embedding_norm.weight".utf8)) {
            name.replaceSubrange(r, with: Data("lfm.embedding_norm.weighX".utf8))
        }
        expectError("a tensor renamed (caught by the header checksum)", "header checksum", open(name, "b6.gguf"))
    }

    /// Runtime edge cases: empty and very short audio, silence, context overflow with audio.
    func testRuntimeEdgeCases() throws {
        let model = try LFMModel(
            path: try Bundles.path("tiny-a", .f32), options: ModelOptions(threads: 2, contextLimit: 128))
        let enc = try XCTUnwrap(model.audioEncoder)
        for (what, n) in [("empty", 0), ("10 samples", 10), ("< 20 ms", 300), ("silence 1 s", 16000)] {
            let e = try enc.embed(AudioClip(samples: [Float](repeating: 0, count: n), sampleRate: 16000, channels: 1))
            XCTAssertEqual(e.count, (n / 160 + 1 + 7) / 8, what)
            XCTAssertTrue(e.values.allSatisfy { $0.isFinite }, what)
        }
        let tr = try Transcriber(model: model)
        _ = try tr.transcribe(AudioClip(samples: [], sampleRate: 8000, channels: 1), emit: { _ in })
        // an hour of audio is windowed (here only the cut points are computed)
        let hour = [Float](repeating: 0.01, count: 3600 * 1000)
        let w = Transcriber.windows(hour, rate: 1000, maxSeconds: 30)
        XCTAssertEqual(w.count, 120); XCTAssertTrue(w.allSatisfy { $0.count <= 30_000 })
        // audio longer than the context: a clear error, the session unchanged
        let s = Conversation(model: model, system: nil)
        let before = s.history.count
        expectError("context overflow", "context limit") {
            _ = try s.generate(
                user: [
                    .audio(
                        AudioClip(samples: [Float](repeating: 0.1, count: 16000 * 20), sampleRate: 16000, channels: 1))
                ],
                maxTokens: 4, sampling: .greedy
            ) { _ in }
        }
        XCTAssertEqual(s.history.count, before)
        // invalid UTF-8 bytes in a prompt arrive as replacement characters and are tokenized byte-level
        let bad = String(decoding: [0x48, 0xFF, 0xC3, 0x28, 0x69], as: UTF8.self)
        _ = try s.generate(user: bad, maxTokens: 3, sampling: .greedy) { _ in }
    }
}

/// Two sessions at the same time on one mapped bundle (one LFMModel each, weights shared): the same answers as
/// one after the other.
final class ConcurrentSessionTests: XCTestCase {
    func testTwoSessionsOnOneBundle() throws {
        let bundle = try ModelBundle(path: try Bundles.path("tiny-a", .q8_0))
        let g = try Goldens(fixtures + "/tiny-a/golden.safetensors")
        let clip = AudioClip(samples: g.floats("input.wave_16k"), sampleRate: 16000, channels: 1)
        @Sendable func answer(_ m: LFMModel, _ i: Int) throws -> ([Int], [[Int]]) {
            let s = Conversation(model: m, system: ChatFormat.System.interleaved)
            var ids: [Int] = [], frames: [[Int]] = []
            let content: [UserContent] = i == 0 ? [.audio(clip)] : [.text("Hello there, how are you?")]
            _ = try s.generate(
                user: content, mode: i == 0 ? .interleaved : .sequential, maxTokens: 24, sampling: .greedy
            ) { ev in
                if case .text(let id, _) = ev { ids.append(id) }
                if case .audio(let c) = ev { frames.append(c) }
            }
            return (ids, frames)
        }
        let models = try (0..<2).map { _ in
            try LFMModel(bundle: bundle, options: ModelOptions(threads: 1, contextLimit: 256))
        }
        let sequential = try (0..<2).map { try answer(models[$0], $0) }
        final class Box: @unchecked Sendable {
            var r = [([Int], [[Int]])?](repeating: nil, count: 2); let lock = NSLock()
        }
        let box = Box()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? answer(models[i], i)
            box.lock.lock(); box.r[i] = r; box.lock.unlock()
        }
        let concurrent = box.r
        for i in 0..<2 {
            XCTAssertEqual(concurrent[i]?.0, sequential[i].0)
            XCTAssertEqual(concurrent[i]?.1, sequential[i].1)
        }
        XCTAssertGreaterThan(sequential[0].0.count + sequential[0].1.count, 0)
    }
}

/// A `--keep-all` bundle (tensors inference never reads kept) opens and runs, and gives the same answer.
final class KeepAllBundleTests: XCTestCase {
    func testKeepAllBundleRuns() throws {
        let ckpt = try Checkpoint(folder: try Bundles.materialized("tiny-a"))
        let plan = try Planner.plan(ckpt, recipe: Recipe(preset: .f32), keepAll: true)
        XCTAssertTrue(plan.dropped.isEmpty)
        let out = tmpDir("keepall") + "/k.gguf"
        _ = try Converter.convert(ckpt, plan: plan, to: out, options: ConvertOptions(threads: 2))
        func answer(_ path: String) throws -> [Int] {
            let m = try LFMModel(path: path, options: ModelOptions(threads: 2, contextLimit: 128))
            XCTAssertNotNil(m.audioEncoder); XCTAssertNotNil(m.audioHead); XCTAssertNotNil(m.mimi);
            XCTAssertNotNil(m.detokenizer)
            var ids: [Int] = []
            _ = try Conversation(model: m).generate(user: "Hello", maxTokens: 6, sampling: .greedy) {
                if case .text(let id, _) = $0 { ids.append(id) }
            }
            return ids
        }
        XCTAssertEqual(try answer(out), try answer(try Bundles.path("tiny-a", .f32)))
    }
}

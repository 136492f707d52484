import XCTest
import TestSupport
import Foundation
import MiniRuntime
@testable import Formats

/// Runs the built `lfm-convert` and checks exit codes, messages and that no output is left behind.
final class CLITests: XCTestCase {
    @discardableResult
    func run(_ args: [String]) throws -> (Int32, String, String) { try runTool("lfm-convert", args) }

    func copyFixture() throws -> String {
        let d = tmpDir("cli") + "/model"
        try FileManager.default.copyItem(atPath: fixtures + "/tiny-b/model", toPath: d)
        return d
    }

    func leftovers(_ dir: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] }

    func testConvertInspectVerifyJSON() throws {
        let outDir = tmpDir("o")
        let out = outDir + "/x.gguf"
        let (rc, stdout, _) = try run([
            fixtures + "/tiny-a/model", "-o", out, "--quant", "q4_0", "--json", "--threads", "2",
        ])
        XCTAssertEqual(rc, 0)
        let j = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any]
        XCTAssertEqual(j["preset"] as? String, "q4_0")
        XCTAssertEqual(leftovers(outDir), ["x.gguf"])
        let (rc2, ins, _) = try run(["inspect", out, "--json"])
        XCTAssertEqual(rc2, 0)
        let ij = try JSONSerialization.jsonObject(with: Data(ins.utf8)) as! [String: Any]
        XCTAssertEqual((ij["tensors"] as! [Any]).count, j["tensors"] as? Int)
        let (rc3, ver, _) = try run(["verify", out, "--against", fixtures + "/tiny-a/model", "--json"])
        XCTAssertEqual(rc3, 0)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(ver.utf8)) as! [String: Any])["ok"] as? Bool, true)
        let (rc4, text, _) = try run(["inspect", out])
        XCTAssertEqual(rc4, 0)
        XCTAssertTrue(text.contains("lfm.embed_tokens.weight") && text.contains("Q8_0"))
        // an existing output is refused without --force
        let (rc5, _, err5) = try run([fixtures + "/tiny-a/model", "-o", out])
        XCTAssertEqual(rc5, 2)
        XCTAssertTrue(err5.contains("--force"))
        XCTAssertEqual(try run([fixtures + "/tiny-a/model", "-o", out, "--force", "--quant", "f16"]).0, 0)
    }

    func testBadUsageExitsTwo() throws {
        let out = tmpDir("u") + "/x.gguf"
        for args in [
            [fixtures + "/tiny-a/model", "-o", out, "--quant", "q5"], [fixtures + "/tiny-a/model"],
            [fixtures + "/tiny-a/model", "-o", out, "--override", "noequals"],
            [fixtures + "/tiny-a/model", "-o", out, "--threads", "0"],
            ["--bogus"],
        ] {
            let (rc, _, err) = try run(args)
            XCTAssertEqual(rc, 2, "\(args): \(err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    /// Each hostile checkpoint gives exit 1, a message naming the file and the problem, and no output file.
    func testHostileCheckpoints() throws {
        let fm = FileManager.default
        typealias Damage = (String) throws -> Void
        let cases: [(String, Damage, [String])] = [
            ("missing config", { try fm.removeItem(atPath: $0 + "/config.json") }, ["config.json", "missing"]),
            (
                "malformed config",
                { try Data("{\"codebooks\": 8,".utf8).write(to: URL(fileURLWithPath: $0 + "/config.json")) },
                ["config.json", "invalid JSON"]
            ),
            (
                "config wrong type",
                { d in
                    var s = try String(contentsOfFile: d + "/config.json", encoding: .utf8)
                    s = s.replacingOccurrences(of: "\"codebooks\": 8", with: "\"codebooks\": \"8\"")
                    try s.write(toFile: d + "/config.json", atomically: true, encoding: .utf8)
                }, ["config.json", "codebooks"]
            ),
            (
                "shape contradicts config",
                { d in
                    var s = try String(contentsOfFile: d + "/config.json", encoding: .utf8)
                    s = s.replacingOccurrences(of: "\"vocab_size\": 640", with: "\"vocab_size\": 700")
                    try s.write(toFile: d + "/config.json", atomically: true, encoding: .utf8)
                }, ["model.safetensors", "lfm.embed_tokens.weight", "[700,"]
            ),
            (
                "missing tensor",
                { d in try rewrite(d + "/model.safetensors") { $0.filter { $0.name != "depth_linear.bias" } } },
                ["model.safetensors", "missing tensor 'depth_linear.bias'"]
            ),
            (
                "unexpected tensor",
                { d in
                    try rewrite(d + "/model.safetensors") {
                        $0 + [.init(name: "lfm.extra.weight", dtype: .f32, shape: [1], data: Data(count: 4))]
                    }
                }, ["unexpected tensor 'lfm.extra.weight'"]
            ),
            (
                "wrong shape",
                { d in
                    try rewrite(d + "/model.safetensors") {
                        $0.map { e in
                            var e = e; if e.name == "depth_linear.bias" { e.shape = [e.shape[0] / 2, 2] }; return e
                        }
                    }
                }, ["depth_linear.bias", "shape"]
            ),
            (
                "truncated model",
                { d in
                    let p = d + "/model.safetensors"; let data = try Data(contentsOf: URL(fileURLWithPath: p))
                    try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: p))
                }, ["model.safetensors", "past the end"]
            ),
            (
                "huge header length",
                { d in
                    let p = d + "/model.safetensors"; var data = try Data(contentsOf: URL(fileURLWithPath: p))
                    data.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 0, 0, 0x7f])
                    try data.write(to: URL(fileURLWithPath: p))
                }, ["model.safetensors", "100 MB"]
            ),
            (
                "unknown dtype",
                { d in
                    let p = d + "/model.safetensors"; var data = try Data(contentsOf: URL(fileURLWithPath: p))
                    let r = data.range(of: Data("\"BF16\"".utf8))!
                    data.replaceSubrange(r, with: Data("\"BX16\"".utf8))
                    try data.write(to: URL(fileURLWithPath: p))
                }, ["model.safetensors", "unknown dtype 'BX16'"]
            ),
            (
                "missing model file", { try fm.removeItem(atPath: $0 + "/model.safetensors") },
                ["model.safetensors", "missing"]
            ),
            (
                "model is a directory",
                { d in
                    try fm.removeItem(atPath: d + "/model.safetensors");
                    try fm.createDirectory(atPath: d + "/model.safetensors", withIntermediateDirectories: false)
                }, ["model.safetensors", "not a regular file"]
            ),
            (
                "dangling symlink",
                { d in
                    try fm.removeItem(atPath: d + "/model.safetensors");
                    try fm.createSymbolicLink(
                        atPath: d + "/model.safetensors", withDestinationPath: "/nonexistent/blob")
                }, ["model.safetensors"]
            ),
            (
                "missing tokenizer", { try fm.removeItem(atPath: $0 + "/tokenizer.json") },
                ["tokenizer.json", "missing"]
            ),
            (
                "special token moved",
                { d in
                    var s = try String(contentsOfFile: d + "/tokenizer.json", encoding: .utf8)
                    s = s.replacingOccurrences(of: "<|audio_start|>", with: "<|audio_begin|>")
                    try s.write(toFile: d + "/tokenizer.json", atomically: true, encoding: .utf8)
                }, ["tokenizer.json", "<|audio_start|>"]
            ),
            (
                "bad mimi config",
                { try Data("{\"seanet\": 1}".utf8).write(to: URL(fileURLWithPath: $0 + "/mimi_config.json")) },
                ["mimi_config.json", "seanet"]
            ),
            (
                "mimi tensor missing",
                { d in
                    try rewrite(d + "/tokenizer-e351c8d8-checkpoint125.safetensors") {
                        $0.filter { $0.name != "upsample.convtr.convtr.convtr.weight" }
                    }
                }, ["tokenizer-e351c8d8", "upsample.convtr.convtr.convtr.weight"]
            ),
            (
                "mimi weight norm",
                { d in
                    try rewrite(d + "/tokenizer-e351c8d8-checkpoint125.safetensors") {
                        $0.flatMap { e -> [SafetensorsWriter.Entry] in
                            guard e.name == "decoder.model.0.conv.conv.weight" else { return [e] }
                            var g = e; g.name = "decoder.model.0.conv.conv.weight_g"; var v = e;
                            v.name = "decoder.model.0.conv.conv.weight_v"; return [g, v]
                        }
                    }
                }, ["weight_g"]
            ),
        ]
        for (label, damage, fragments) in cases {
            let d = try copyFixture()
            try damage(d)
            let outDir = tmpDir("h")
            let (rc, _, err) = try run([d, "-o", outDir + "/out.gguf"])
            XCTAssertEqual(rc, 1, "\(label): \(err)")
            for f in fragments { XCTAssertTrue(err.contains(f), "\(label): expected '\(f)' in: \(err)") }
            XCTAssertTrue(err.contains("error: "), "\(label): \(err)")
            XCTAssertEqual(leftovers(outDir), [], label)
        }
    }

    func testInputIsNeverModifiedAndOutputMayNotBeAnInput() throws {
        let d = try copyFixture()
        let before = try FileManager.default.contentsOfDirectory(atPath: d).sorted().map {
            ($0, FileManager.default.contents(atPath: d + "/" + $0))
        }
        XCTAssertEqual(try run([d, "-o", d + "/model.safetensors", "--force"]).0, 2)
        XCTAssertEqual(try run([d, "-o", tmpDir("z") + "/o.gguf"]).0, 0)
        let after = try FileManager.default.contentsOfDirectory(atPath: d).sorted().map {
            ($0, FileManager.default.contents(atPath: d + "/" + $0))
        }
        XCTAssertEqual(before.map(\.0), after.map(\.0))
        XCTAssertTrue(zip(before, after).allSatisfy { $0.1 == $1.1 })
    }
}

/// Rewrites a safetensors file through a transformation of its entries.
func rewrite(_ path: String, _ f: ([SafetensorsWriter.Entry]) -> [SafetensorsWriter.Entry]) throws {
    let s = try SafetensorsFile(path: path)
    let entries = s.names.map { n in
        let t = s.tensors[n]!;
        return SafetensorsWriter.Entry(name: n, dtype: t.dtype, shape: t.shape, data: Data(t.bytes))
    }
    try SafetensorsWriter.write(f(entries), to: path)
}

/// Runs a built executable of this package: (exit status, stdout, stderr).
@discardableResult
func runTool(_ name: String, _ args: [String]) throws -> (Int32, String, String) {
    let r = try runProcess(tool(name), args)
    return (r.status, r.out, r.err)
}

/// Path of a built executable of this package (beside the test bundle).
func tool(_ name: String) -> String {
    if name.hasPrefix("/") { return name }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let c = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: c) { return c }
        dir = dir.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path
}

/// The `lfm-run text` contract scripts rely on: JSON Lines events, exit codes, integrity checks.
final class RunCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String, String) { try runTool("lfm-run", args) }

    func bundle() throws -> String {
        let out = tmpDir("runcli") + "/b.gguf"
        let (rc, _, err) = try runTool("lfm-convert", [fixtures + "/tiny-a/model", "-o", out, "--quant", "q8_0"])
        XCTAssertEqual(rc, 0, err)
        return out
    }

    func testJSONEventsAndStats() throws {
        let b = try bundle()
        let (rc, out, err) = try run([
            "text", "--bundle", b, "--prompt", "Hello there", "--max-tokens", "6", "--json", "--stats", "--threads",
            "2",
        ])
        XCTAssertEqual(rc, 0, err)
        let events = out.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let texts = events.filter { $0["type"] as? String == "text" }
        XCTAssertGreaterThan(texts.count, 0)
        XCTAssertLessThanOrEqual(texts.count, 6)
        for t in texts { XCTAssertNotNil(t["id"] as? Int); XCTAssertNotNil(t["text"] as? String) }
        let done = try XCTUnwrap(events.last)
        XCTAssertEqual(done["type"] as? String, "done")
        XCTAssertEqual(done["generated_tokens"] as? Int, texts.count)
        if texts.count < 6 { XCTAssertEqual(texts.last?["id"] as? Int, 7, "only <|im_end|> ends a turn early") }
        XCTAssertTrue(err.contains("decode") && err.contains("peak RSS"), err)
        // greedy is the default and deterministic; a seeded sampled run is reproducible
        XCTAssertEqual(
            try run(["text", "--bundle", b, "--prompt", "Hello there", "--max-tokens", "6", "--json"]).1.split(
                separator: "\n"
            ).dropLast(),
            out.split(separator: "\n").dropLast())
        let s1 = try run([
            "text", "--bundle", b, "--prompt", "Hi", "--max-tokens", "8", "--temperature", "1.0", "--top-k", "20",
            "--seed", "3", "--json",
        ]).1
        let s2 = try run([
            "text", "--bundle", b, "--prompt", "Hi", "--max-tokens", "8", "--temperature", "1.0", "--top-k", "20",
            "--seed", "3", "--json",
        ]).1
        XCTAssertEqual(s1.split(separator: "\n").dropLast(), s2.split(separator: "\n").dropLast())
    }

    /// Interactive text chat: turns on stdin, the history kept; closing stdin ends the session cleanly.
    func testInteractiveTurnsAndClosedStdin() throws {
        let b = try bundle()
        // the last line has no newline: stdin closes mid-line
        let r = try runProcess(
            tool("lfm-run"), ["text", "--bundle", b, "--max-tokens", "5", "--json"],
            input: Data("Hello\n\n/audio \(fixtures)/audio/speech.wav what is this?\nThanks".utf8))
        XCTAssertEqual(r.status, 0)
        let dones = r.out.split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter {
                $0["type"] as? String == "done"
            }
        XCTAssertEqual(dones.count, 3)
        XCTAssertEqual(dones[1]["audio_positions"] as? Int, 16)
    }

    /// The kernel tier is named in the done event and on --stats; LFM_CPU forces one, and a tier that is unknown or
    /// that this CPU lacks is a clear error (exit 1).
    func testKernelTierReportedAndForced() throws {
        let b = try bundle()
        func runEnv(_ env: [String: String], _ args: [String]) throws -> (Int32, String, String) {
            let r = try runProcess(tool("lfm-run"), args, environment: env)
            return (r.status, r.out, r.err)
        }
        let args = ["text", "--bundle", b, "--prompt", "Hello", "--max-tokens", "3", "--json", "--stats"]
        let best = KernelTier.report().best
        for (env, tier) in [
            ([String: String](), best), (["LFM_CPU": "scalar"], "scalar"), (["LFM_CPU": best.uppercased()], best),
        ] {
            let (rc, out, err) = try runEnv(env, args)
            XCTAssertEqual(rc, 0, err)
            let done = try XCTUnwrap(
                out.split(separator: "\n").last.flatMap {
                    try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                })
            XCTAssertEqual(done["kernel_tier"] as? String, tier)
            XCTAssertNotNil(done["blas"] as? String)
            XCTAssertTrue(err.contains("kernels \(tier)"), err)
        }
        let (rc1, _, err1) = try runEnv(["LFM_CPU": "sse9"], args)
        XCTAssertEqual(rc1, 1); XCTAssertTrue(err1.contains("LFM_CPU='sse9' is not a kernel tier"), err1)
        #if arch(x86_64)
        let lacking = "neon"
        #else
        let lacking = "avx2"
        #endif
        let (rc2, _, err2) = try runEnv(["LFM_CPU": lacking], args)
        XCTAssertEqual(rc2, 1); XCTAssertTrue(err2.contains("this CPU cannot run that tier"), err2)
    }

    func testErrorsAndExitCodes() throws {
        let b = try bundle()
        XCTAssertEqual(try run(["text", "--bundle", b, "--prompt", "x", "--max-tokens", "0"]).0, 2)
        XCTAssertEqual(try run(["text", "--prompt", "x"]).0, 2)
        let (rc, _, err) = try run(["text", "--bundle", "/nonexistent.gguf", "--prompt", "x"])
        XCTAssertEqual(rc, 1)
        XCTAssertTrue(err.contains("/nonexistent.gguf"), err)
        // a damaged header is refused at open; a damaged tensor is caught by --verify
        var data = try Data(contentsOf: URL(fileURLWithPath: b))
        var hdr = data; hdr[0] = 0x58
        let badHeader = tmpDir("bad") + "/h.gguf"; try hdr.write(to: URL(fileURLWithPath: badHeader))
        let (rc2, _, err2) = try run(["text", "--bundle", badHeader, "--prompt", "x"])
        XCTAssertEqual(rc2, 1); XCTAssertTrue(err2.contains("not a GGUF"), err2)
        let g = try GGUFFile(path: b)
        let t = g.tensor("lfm.layers.0.feed_forward.w1.weight")!
        data[g.dataOffset + t.offset + 5] ^= 0x10
        let flipped = tmpDir("bad") + "/f.gguf"; try data.write(to: URL(fileURLWithPath: flipped))
        let (rc3, _, err3) = try run(["text", "--bundle", flipped, "--prompt", "x", "--verify"])
        XCTAssertEqual(rc3, 1); XCTAssertTrue(err3.contains("lfm.layers.0.feed_forward.w1.weight"), err3)
        // context overflow is a clear error
        let (rc4, _, err4) = try run([
            "text", "--bundle", b, "--prompt", String(repeating: "word ", count: 100), "--ctx", "32",
        ])
        XCTAssertEqual(rc4, 1); XCTAssertTrue(err4.contains("context limit"), err4)
    }
}

/// The `lfm-run asr` contract: transcript on stdout, JSON segment/text/done events, window splitting, clear errors.
final class ASRCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String, String) { try runTool("lfm-run", args) }

    func testASRJSONAndWindows() throws {
        let out = tmpDir("asrcli") + "/b.gguf"
        XCTAssertEqual(try runTool("lfm-convert", [fixtures + "/tiny-b/model", "-o", out, "--quant", "f32"]).0, 0)
        let wav = fixtures + "/audio/speech.wav"
        // one window: the greedy stream of the reference (tiny-b stops at <|audio_start|> after 12 transcript tokens)
        let (rc, o, err) = try run(["asr", "--bundle", out, "--audio", wav, "--json", "--stats", "--threads", "2"])
        XCTAssertEqual(rc, 0, err)
        let ev = o.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        XCTAssertEqual(ev.first?["type"] as? String, "segment")
        XCTAssertEqual(ev.first?["start"] as? Double, 0)
        XCTAssertEqual(ev.first?["end"] as? Double ?? 0, 1.2, accuracy: 1e-9)
        let texts = ev.filter { $0["type"] as? String == "text" }
        XCTAssertEqual(texts.count, 12)
        let done = try XCTUnwrap(ev.last)
        XCTAssertEqual(done["type"] as? String, "done")
        XCTAssertEqual(done["stop_reason"] as? String, "audio_start")
        XCTAssertEqual(done["audio_positions"] as? Int, 16)
        XCTAssertTrue(err.contains("real time"), err)
        // plain output is the same transcript
        let (rc2, plain, _) = try run(["asr", "--bundle", out, "--audio", wav])
        XCTAssertEqual(rc2, 0)
        XCTAssertEqual(plain, texts.map { $0["text"] as! String }.joined() + "\n")
        // a 1 s window splits the 1.2 s clip in two, each transcribed on its own
        let (rc3, o3, _) = try run([
            "asr", "--bundle", out, "--audio", wav, "--json", "--window", "1", "--max-tokens", "3",
        ])
        XCTAssertEqual(rc3, 0)
        let segs = o3.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }.filter { $0["type"] as? String == "segment" }
        XCTAssertEqual(segs.count, 2)
        XCTAssertEqual(segs[0]["end"] as? Double, segs[1]["start"] as? Double)
        XCTAssertEqual(segs[1]["end"] as? Double ?? 0, 1.2, accuracy: 1e-9)
        // bad WAV, bad flags
        let bad = tmpDir("asrcli") + "/bad.wav"
        try Data("RIFF\u{0}\u{0}".utf8).write(to: URL(fileURLWithPath: bad))
        let (rc4, _, err4) = try run(["asr", "--bundle", out, "--audio", bad])
        XCTAssertEqual(rc4, 1); XCTAssertTrue(err4.contains(bad), err4)
        XCTAssertEqual(try run(["asr", "--bundle", out, "--audio", wav, "--window", "0"]).0, 2)
        XCTAssertEqual(try run(["asr", "--bundle", out]).0, 2)
    }
}

/// `lfm-run tts`, `chat` and `decode`: JSON audio events, WAV files that read back, decode of the events' codes,
/// streaming to stdout, a clean partial WAV after Ctrl-C, clear errors.
final class SpeechCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String, String) { try runTool("lfm-run", args) }

    static let bundlePath: String = {
        let out = tmpDir("speechcli") + "/b.gguf"
        let (rc, _, err) = try! runTool(
            "lfm-convert", [try! materializedFixture("tiny-a"), "-o", out, "--quant", "q8_0"])
        precondition(rc == 0, err)
        return out
    }()

    func events(_ s: String) -> [[String: Any]] {
        s.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testTTSWritesWAVAndDecodeReproducesIt() throws {
        let b = Self.bundlePath, dir = tmpDir("tts")
        for decoder in ["detokenizer", "mimi"] {
            let wav = dir + "/\(decoder).wav"
            let (rc, o, err) = try run([
                "tts", "--bundle", b, "--text", "Speak now.", "--voice", "us-female", "-o", wav, "--json",
                "--max-tokens", "60", "--decoder", decoder, "--stats",
            ])
            XCTAssertEqual(rc, 0, err)
            let ev = events(o)
            let frames = ev.filter { $0["type"] as? String == "audio" }.map { $0["codes"] as! [Int] }
            XCTAssertGreaterThan(frames.count, 2)
            XCTAssertTrue(frames.allSatisfy { $0.count == 8 })
            let done = try XCTUnwrap(ev.last); XCTAssertEqual(done["type"] as? String, "done");
            XCTAssertEqual(done["decoder"] as? String, decoder)
            let clip = try WAVReaderProxy.read(wav)
            XCTAssertEqual(clip.rate, 24000)
            let valid = frames.filter { !$0.contains(2048) }.count
            XCTAssertEqual(clip.samples.count, valid * 1920)
            // decode the same codes from JSON: the same waveform
            let codesFile = dir + "/codes-\(decoder).json"
            try JSONSerialization.data(withJSONObject: frames).write(to: URL(fileURLWithPath: codesFile))
            let wav2 = dir + "/\(decoder)-decoded.wav"
            let (rc2, _, err2) = try run([
                "decode", "--bundle", b, "--codes", codesFile, "--decoder", decoder, "-o", wav2,
            ])
            XCTAssertEqual(rc2, 0, err2)
            XCTAssertEqual(try WAVReaderProxy.read(wav2).samples, clip.samples)
            // f32 output and streaming to stdout
            let (rc3, _, _) = try run([
                "decode", "--bundle", b, "--codes", codesFile, "--decoder", decoder, "-o", dir + "/f.wav",
                "--wav-format", "f32",
            ])
            XCTAssertEqual(rc3, 0)
            XCTAssertEqual(try WAVReaderProxy.read(dir + "/f.wav").samples.count, clip.samples.count)
            let (rc4, stdout, _) = try run([
                "decode", "--bundle", b, "--codes", codesFile, "--decoder", decoder, "-o", "-",
            ])
            XCTAssertEqual(rc4, 0)
            try Data(stdout.utf8).count > 0 ? () : XCTFail("no stdout")
        }
        XCTAssertTrue(
            (try FileManager.default.contentsOfDirectory(atPath: dir)).allSatisfy { !$0.contains(".tmp-") },
            "no temporary files left")
    }

    func testChatAndErrors() throws {
        let b = Self.bundlePath, dir = tmpDir("chat")
        let wav = dir + "/reply.wav"
        let (rc, o, err) = try run([
            "chat", "--bundle", b, "--audio", fixtures + "/audio/speech.wav", "-o", wav, "--json", "--max-tokens", "30",
            "--greedy",
        ])
        XCTAssertEqual(rc, 0, err)
        let ev = events(o)
        XCTAssertTrue(ev.contains { $0["type"] as? String == "text" })
        let frames = ev.filter { $0["type"] as? String == "audio" }
        XCTAssertGreaterThan(frames.count, 0)
        XCTAssertEqual(
            try WAVReaderProxy.read(wav).samples.count,
            frames.filter { !($0["codes"] as! [Int]).contains(2048) }.count * 1920)
        // bad inputs
        let badCodes = dir + "/bad.json"
        try Data("[[1,2,3]]".utf8).write(to: URL(fileURLWithPath: badCodes))
        let (rc2, _, err2) = try run(["decode", "--bundle", b, "--codes", badCodes, "-o", dir + "/x.wav"])
        XCTAssertEqual(rc2, 1); XCTAssertTrue(err2.contains("frame 0 has 3 codes"), err2)
        try Data("[[1,2,3,4,5,6,7,9999]]".utf8).write(to: URL(fileURLWithPath: badCodes))
        let (rc3, _, err3) = try run(["decode", "--bundle", b, "--codes", badCodes, "-o", dir + "/x.wav"])
        XCTAssertEqual(rc3, 1); XCTAssertTrue(err3.contains("0…2048"), err3)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: badCodes))
        XCTAssertEqual(try run(["decode", "--bundle", b, "--codes", badCodes, "-o", dir + "/x.wav"]).0, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.wav"))
        XCTAssertEqual(try run(["tts", "--bundle", b, "--text", "x"]).0, 2, "-o is required")
        XCTAssertEqual(try run(["tts", "--bundle", b, "--text", "x", "-o", dir + "/y.wav", "--voice", "robot"]).0, 2)
        XCTAssertEqual(
            try run(["tts", "--bundle", b, "--text", "x", "-o", dir + "/y.wav", "--decoder", "vocoder"]).0, 2)
    }

    /// Interactive speech chat: a WAV turn then a text turn, each answer in its own WAV, the history kept.
    func testInteractiveChatTurns() throws {
        let b = Self.bundlePath, dir = tmpDir("ichat")
        let r = try runProcess(
            tool("lfm-run"),
            ["chat", "--bundle", b, "-o", dir + "/reply.wav", "--max-tokens", "24", "--json", "--greedy"],
            input: Data((fixtures + "/audio/speech.wav\nAnd then?\n").utf8))
        XCTAssertEqual(r.status, 0)
        let ev = events(r.out)
        let dones = ev.filter { $0["type"] as? String == "done" }
        XCTAssertEqual(dones.count, 2)
        XCTAssertEqual(dones[0]["audio_in_positions"] as? Int, 16, "turn 1 heard the clip")
        XCTAssertGreaterThan(dones[1]["prompt_tokens"] as? Int ?? 0, 0)
        for n in 1...2 {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/reply-\(n).wav"), "reply-\(n).wav")
        }
    }

    /// Ctrl-C stops generation and leaves a valid WAV of what was spoken.
    func testInterruptLeavesValidWAV() throws {
        let b = Self.bundlePath, dir = tmpDir("int")
        let wav = dir + "/long.wav"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool("lfm-run"))
        p.arguments = [
            "tts", "--bundle", b, "--text", "Speak now.", "--voice", "us-female", "-o", wav, "--max-tokens", "100000",
            "--json",
        ]
        let pipe = Pipe(); p.standardOutput = pipe; p.standardError = FileHandle.nullDevice
        try p.run()
        // a run that never prints its frames or ignores the interrupt is killed (the test fails) rather than hang
        let watchdog = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 300, execute: watchdog)
        defer { watchdog.cancel() }
        // wait for some audio frames, then interrupt
        var seen = Data()
        let h = pipe.fileHandleForReading
        while String(decoding: seen, as: UTF8.self).components(separatedBy: "\"audio\"").count < 6 {
            let d = h.availableData; if d.isEmpty { break }; seen += d
        }
        kill(p.processIdentifier, SIGINT)
        seen += h.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let ev = events(String(decoding: seen, as: UTF8.self))
        XCTAssertEqual(ev.last?["stop_reason"] as? String, "cancelled")
        let clip = try WAVReaderProxy.read(wav)
        XCTAssertGreaterThan(clip.samples.count, 0)
        XCTAssertEqual(clip.samples.count % 1920, 0, "whole frames (the detokenizer's tail is flushed at the stop)")
    }
}

/// Reads WAVs through the runtime's reader (the test target links MiniRuntime).
enum WAVReaderProxy {
    static func read(_ path: String) throws -> (rate: Int, samples: [Float]) {
        let c = try WAVReader.read(path)
        return (c.sampleRate, c.samples)
    }
}

/// Every spelling the converter accepts for a tensor must run: a Mimi file saved from the reference's module state
/// dict names its attention projections `self_attn.in_projs.0.weight` / `out_projs.0.weight` (or `in_proj.weight`).
/// The bundle stores the canonical name, so `tts` with the Mimi decoder gives the same waveform as the canonical file.
final class AliasCLITests: XCTestCase {
    func testMimiAliasSpellingsConvertAndSpeak() throws {
        let dir = tmpDir("alias")
        let base = try materializedFixture("tiny-a")
        let mimi = "tokenizer-e351c8d8-checkpoint125.safetensors"
        func speak(_ model: String, _ tag: String) throws -> [Float] {
            let out = dir + "/\(tag).gguf", wav = dir + "/\(tag).wav"
            let (rc, _, err) = try runTool("lfm-convert", [model, "-o", out, "--quant", "f32"])
            XCTAssertEqual(rc, 0, "\(tag): \(err)")
            let (rc2, _, err2) = try runTool(
                "lfm-run",
                [
                    "tts", "--bundle", out, "--text", "Speak now.", "--voice", "us-female", "--decoder", "mimi",
                    "--seed", "7",
                    "--max-tokens", "60", "-o", wav,
                ])
            XCTAssertEqual(rc2, 0, "\(tag): \(err2)")
            return try WAVReaderProxy.read(wav).samples
        }
        let reference = try speak(base, "canonical")
        XCTAssertGreaterThan(reference.count, 0)
        let spellings: [(String, String)] = [
            ("self_attn.in_projs.0.weight", "self_attn.out_projs.0.weight"),
            ("self_attn.in_proj.weight", "self_attn.out_projs.0.weight"),
        ]
        for (k, (inName, outName)) in spellings.enumerated() {
            let m = dir + "/alias\(k)"
            try FileManager.default.copyItem(atPath: base, toPath: m)
            var renamed = 0
            try rewrite(m + "/" + mimi) { entries in
                entries.map { e in
                    var e = e
                    if e.name.hasSuffix("self_attn.in_proj_weight") {
                        e.name = String(e.name.dropLast("self_attn.in_proj_weight".count)) + inName; renamed += 1
                    } else if e.name.hasSuffix("self_attn.out_proj.weight") {
                        e.name = String(e.name.dropLast("self_attn.out_proj.weight".count)) + outName; renamed += 1
                    }
                    return e
                }
            }
            XCTAssertGreaterThan(renamed, 0, "the fixture's Mimi file has attention projections to rename")
            XCTAssertEqual(try speak(m, "alias\(k)"), reference, "\(inName): same waveform as the canonical spelling")
        }
    }
}

import AudioFiles
import Foundation
import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime
@testable import LFMServer
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `lfm-run serve` against a live server on 127.0.0.1, port 0, with the tiny fixture bundle.
final class ServerTests: XCTestCase {
    nonisolated(unsafe) static var bundlePath: String?
    nonisolated(unsafe) static var main: ServeProcess?

    static func bundle() throws -> String {
        if let b = bundlePath { return b }
        let ckpt = try Checkpoint(folder: try materializedFixture("tiny-a"))
        let plan = try Planner.plan(ckpt, recipe: Recipe(preset: .q8_0))
        let out = tmpDir("serve") + "/tiny-a.gguf"
        _ = try Converter.convert(ckpt, plan: plan, to: out, options: ConvertOptions(threads: 2))
        bundlePath = out
        return out
    }

    func server() throws -> ServeProcess {
        if let s = Self.main { return s }
        let s = try ServeProcess(bundle: try Self.bundle(), extra: ["--max-conversations", "8"])
        Self.main = s
        return s
    }

    override class func tearDown() { main?.stop() }

    var speechWAV: Data { FileManager.default.contents(atPath: fixtures + "/audio/speech.wav")! }

    func testHealthModelsMetricsPageAndNotFound() throws {
        let s = try server()
        var (st, body, _) = try s.request("GET", "/health")
        XCTAssertEqual(st, 200)
        XCTAssertEqual(try json(body)["status"] as? String, "ok")
        (st, body, _) = try s.request("GET", "/v1/models")
        XCTAssertEqual(st, 200)
        let m = try json(body)
        XCTAssertEqual(m["object"] as? String, "list")
        XCTAssertEqual((m["data"] as? [[String: Any]])?.first?["id"] as? String, "tiny-a")
        (st, body, _) = try s.request("GET", "/")
        XCTAssertEqual(st, 200)
        let page = String(decoding: body, as: UTF8.self)
        XCTAssertTrue(page.contains("/v1/realtime") && page.contains("audioWorklet") && page.contains("getUserMedia"))
        XCTAssertFalse(page.contains("src=\"http"), "no external resources")
        (st, body, _) = try s.request("GET", "/nope/../../etc/passwd")
        XCTAssertEqual(st, 404)
        XCTAssertNotNil((try json(body)["error"] as? [String: Any])?["message"])
        (st, body, _) = try s.request("GET", "/metrics")
        XCTAssertEqual(st, 200)
        let metrics = String(decoding: body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("lfm_requests_total{route=\"/health\",status=\"200\"}"), metrics)
        XCTAssertTrue(metrics.contains("lfm_active_conversations"))
        XCTAssertTrue(metrics.contains("lfm_time_to_first_audio_seconds_bucket"))
    }

    func testSpeechFormatsStreamingAndCLIParity() throws {
        let s = try server()
        let req: [String: Any] = ["input": "Speak now.", "voice": "us-female", "greedy": true, "max_tokens": 60]
        var (st, body, headers) = try s.request("POST", "/v1/audio/speech", json: req)
        XCTAssertEqual(st, 200, String(decoding: body, as: UTF8.self))
        XCTAssertEqual(headers["Content-Type"], "audio/wav")
        let clip = try WAVReader.parse(body, name: "speech")
        XCTAssertEqual(clip.sampleRate, 24000)
        XCTAssertGreaterThan(clip.samples.count, 0)
        // greedy: exactly the CLI's samples
        let cliOut = tmpDir("serve-cli") + "/tts.wav"
        let (rc, _, err) = try runServeTool([
            "tts", "--bundle", try Self.bundle(), "--text", "Speak now.", "--voice", "us-female", "--greedy",
            "--max-tokens", "60", "-o", cliOut,
        ])
        XCTAssertEqual(rc, 0, err)
        let cli = try WAVReader.read(cliOut)
        XCTAssertEqual(cli.samples, clip.samples, "server and CLI speech differ")
        // pcm: the same samples without a header
        var r2 = req
        r2["response_format"] = "pcm"
        (st, body, _) = try s.request("POST", "/v1/audio/speech", json: r2)
        XCTAssertEqual(st, 200)
        XCTAssertEqual(AudioCodec.floats(pcm16: [UInt8](body)).count, clip.samples.count)
        // SSE
        r2["stream_format"] = "sse"
        (st, body, headers) = try s.request("POST", "/v1/audio/speech", json: r2)
        XCTAssertEqual(st, 200)
        XCTAssertEqual(headers["Content-Type"], "text/event-stream")
        let events = sseEvents(body)
        XCTAssertEqual(events.last?["type"] as? String, "speech.audio.done")
        let pcm = events.filter { $0["type"] as? String == "speech.audio.delta" }.compactMap {
            Data(base64Encoded: $0["audio"] as! String)
        }.reduce(Data(), +)
        XCTAssertEqual(pcm.count, clip.samples.count * 2)
        // compressed formats through libsndfile
        for (f, magic) in [("flac", "fLaC"), ("opus", "OggS"), ("mp3", "")] {
            var r3 = req
            r3["response_format"] = f
            (st, body, _) = try s.request("POST", "/v1/audio/speech", json: r3)
            XCTAssertEqual(st, 200, f)
            XCTAssertGreaterThan(body.count, 100, f)
            if !magic.isEmpty { XCTAssertEqual(String(decoding: body.prefix(4), as: UTF8.self), magic) }
            if f == "flac" {
                let back = try AudioCodec.decode([UInt8](body), name: "x.flac")
                XCTAssertEqual(back.samples.count, clip.samples.count)
            }
        }
        // bad requests name the field
        for (bad, param) in [
            (["voice": "robot", "input": "x"], "voice"), (["input": ""], "input"),
            (["input": "x", "response_format": "aac"], "response_format"),
            (["input": "x", "max_tokens": -3], "max_tokens"), (["input": 5], "input"),
        ] as [([String: Any], String)] {
            (st, body, _) = try s.request("POST", "/v1/audio/speech", json: bad)
            XCTAssertEqual(st, 400)
            XCTAssertEqual((try json(body)["error"] as? [String: Any])?["param"] as? String, param)
        }
        (st, body, _) = try s.request("POST", "/v1/audio/speech", body: Data("{not json".utf8))
        XCTAssertEqual(st, 400)
        XCTAssertEqual((try json(body)["error"] as? [String: Any])?["code"] as? String, "invalid_json")
    }

    func testStreamedEncodingDecodesLikeTheWholeFile() throws {
        // 1.3 s of a tone handed over in 80 ms frames, as speech comes from the decoder
        let rate = 24000
        let samples = (0..<(rate * 13 / 10)).map { Float(0.4 * sin(Double($0) * 2 * .pi * 220 / Double(rate))) }
        for format in [AudioCodec.OutputFormat.flac, .opus, .mp3] {
            let enc = try AudioCodec.Stream(sampleRate: rate, format: format)
            var out: [UInt8] = [], chunks = 0
            for f in stride(from: 0, to: samples.count, by: 1920) {
                let b = enc.append(Array(samples[f..<min(samples.count, f + 1920)]))
                if !b.isEmpty { chunks += 1 }
                out += b
            }
            let early = out.count
            out += enc.finish()
            XCTAssertGreaterThan(chunks, 1, "\(format): bytes only at the end")
            XCTAssertGreaterThan(early, 0, "\(format)")
            let back = try AudioCodec.decode(out, name: "streamed.\(format.rawValue)")
            if format == .flac {  // lossless at 16 bits: the same samples as the file encoded whole
                let whole = try AudioCodec.decode(
                    AudioCodec.encode(samples, sampleRate: rate, format: .flac), name: "whole.flac")
                XCTAssertEqual(back.samples, whole.samples)
            } else {  // lossy, with encoder delay and padding
                XCTAssertEqual(
                    Double(back.samples.count), Double(samples.count), accuracy: 0.1 * Double(samples.count),
                    "\(format)")
            }
        }
    }

    func testTranscriptionsAllFormats() throws {
        let s = try server()
        func post(_ fields: [String: String], file: Data? = nil, name: String = "speech.wav") throws -> (Int, Data) {
            let (st, body, _) = try s.multipart(
                "/v1/audio/transcriptions", fields: fields, file: file ?? speechWAV, name: name)
            return (st, body)
        }
        var (st, body) = try post(["max_tokens": "12"])
        XCTAssertEqual(st, 200, String(decoding: body, as: UTF8.self))
        let text = try json(body)["text"] as? String
        XCTAssertNotNil(text)
        // greedy: the CLI's transcript
        let (rc, out, err) = try runServeTool([
            "asr", "--bundle", try Self.bundle(), "--audio", fixtures + "/audio/speech.wav", "--max-tokens", "12",
        ])
        XCTAssertEqual(rc, 0, err)
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), text?.trimmingCharacters(in: .whitespaces))
        (st, body) = try post(["response_format": "text", "max_tokens": "12"])
        XCTAssertEqual(String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), text)
        (st, body) = try post(["response_format": "verbose_json", "max_tokens": "12", "window": "1"])
        let segs = try json(body)["segments"] as? [[String: Any]]
        XCTAssertGreaterThan(segs?.count ?? 0, 1, "a 1.2 s clip in 1 s windows has several segments")
        XCTAssertEqual(segs?.first?["start"] as? Double, 0)
        (st, body) = try post(["response_format": "srt", "max_tokens": "12"])
        XCTAssertTrue(String(decoding: body, as: UTF8.self).hasPrefix("1\n00:00:00,000 --> 00:00:01,"))
        (st, body) = try post(["response_format": "vtt", "max_tokens": "12"])
        XCTAssertTrue(String(decoding: body, as: UTF8.self).hasPrefix("WEBVTT\n\n00:00:00.000 --> "))
        (st, body) = try post(["stream": "true", "max_tokens": "12"])
        let ev = sseEvents(body)
        XCTAssertEqual(ev.last?["type"] as? String, "transcript.text.done")
        XCTAssertEqual((ev.last?["text"] as? String)?.trimmingCharacters(in: .whitespaces), text)
        // FLAC in, through libsndfile
        let clip = try WAVReader.parse(speechWAV, name: "speech")
        let flac = try AudioCodec.encode(clip.samples, sampleRate: clip.sampleRate, format: .flac)
        (st, body) = try post(["max_tokens": "12"], file: Data(flac), name: "speech.flac")
        XCTAssertEqual(st, 200, String(decoding: body, as: UTF8.self))
        XCTAssertEqual(try json(body)["text"] as? String, text, "16-bit FLAC is lossless: the same transcript")
        // the CLI's --audio reads FLAC too
        let flacPath = tmpDir("serve-flac") + "/speech.flac"
        try Data(flac).write(to: URL(fileURLWithPath: flacPath))
        let (rc2, out2, err2) = try runServeTool([
            "asr", "--bundle", try Self.bundle(), "--audio", flacPath, "--max-tokens", "12",
        ])
        XCTAssertEqual(rc2, 0, err2)
        XCTAssertEqual(out2.trimmingCharacters(in: .whitespacesAndNewlines), text?.trimmingCharacters(in: .whitespaces))
        // hostile uploads
        (st, body) = try post([:], file: Data("this is not audio at all".utf8), name: "x.txt")
        XCTAssertEqual(st, 400)
        XCTAssertEqual((try json(body)["error"] as? [String: Any])?["param"] as? String, "file")
        (st, body) = try post(["response_format": "docx"])
        XCTAssertEqual(st, 400)
        let (st2, b2, _) = try s.request(
            "POST", "/v1/audio/transcriptions",
            body: Data("--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc".utf8),
            contentType: "multipart/form-data; boundary=xyz")
        XCTAssertEqual(st2, 400, String(decoding: b2, as: UTF8.self))
    }

    func testChatCompletionsTextAudioStreamAndConversation() throws {
        let s = try server()
        let msg: [String: Any] = [
            "messages": [["role": "user", "content": "Say hi."]], "max_tokens": 16,
        ]
        var (st, body, _) = try s.request("POST", "/v1/chat/completions", json: msg)
        XCTAssertEqual(st, 200, String(decoding: body, as: UTF8.self))
        let o = try json(body)
        let content = ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        XCTAssertNotNil(content)
        XCTAssertEqual(o["object"] as? String, "chat.completion")
        // greedy: the CLI's text
        let (rc, out, err) = try runServeTool([
            "text", "--bundle", try Self.bundle(), "--prompt", "Say hi.", "--max-tokens", "16", "--json",
        ])
        XCTAssertEqual(rc, 0, err)
        let cliText = out.split(separator: "\n").compactMap { try? json(Data($0.utf8)) }.filter {
            $0["type"] as? String == "text"
        }.map { $0["text"] as? String ?? "" }.joined()
        XCTAssertEqual(cliText.replacingOccurrences(of: "<|im_end|>", with: ""), content)
        // streamed text
        var m2 = msg
        m2["stream"] = true
        (st, body, _) = try s.request("POST", "/v1/chat/completions", json: m2)
        XCTAssertTrue(String(decoding: body, as: UTF8.self).hasSuffix("data: [DONE]\n\n"))
        let streamed = sseEvents(body).compactMap {
            (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
        }.joined()
        XCTAssertEqual(streamed, content)
        // audio in and out
        let audioMsg: [String: Any] = [
            "messages": [
                [
                    "role": "user",
                    "content": [
                        [
                            "type": "input_audio",
                            "input_audio": ["data": speechWAV.base64EncodedString(), "format": "wav"],
                        ]
                    ],
                ]
            ],
            "modalities": ["text", "audio"], "audio": ["voice": "alloy", "format": "wav"], "max_tokens": 30,
            "greedy": true,
        ]
        (st, body, _) = try s.request("POST", "/v1/chat/completions", json: audioMsg)
        XCTAssertEqual(st, 200, String(decoding: body, as: UTF8.self))
        let audio =
            (((try json(body)["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any])?["audio"]
            as? [String: Any]
        let wav = Data(base64Encoded: audio?["data"] as? String ?? "") ?? Data()
        let spoken = try WAVReader.parse(wav, name: "chat")
        XCTAssertGreaterThan(spoken.samples.count, 0)
        var a2 = audioMsg
        a2["stream"] = true
        (st, body, _) = try s.request("POST", "/v1/chat/completions", json: a2)
        let chunks = sseEvents(body)
        let pcm = chunks.compactMap {
            ((($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["audio"] as? [String: Any])?[
                "data"]
                as? String
        }.compactMap { Data(base64Encoded: $0) }
        XCTAssertFalse(pcm.isEmpty)
        XCTAssertEqual(pcm.reduce(0) { $0 + $1.count }, spoken.samples.count * 2, "streamed audio = unstreamed")
        XCTAssertTrue(pcm.dropLast().allSatisfy { $0.count % 3840 == 0 }, "whole 80 ms frames")
        // a kept conversation: the second request carries only the new turn
        let conv = "test-\(UUID().uuidString)"
        var c1: [String: Any] = ["messages": [["role": "user", "content": "My name is Ada."]], "max_tokens": 8]
        c1["conversation"] = conv
        (st, body, _) = try s.request("POST", "/v1/chat/completions", json: c1)
        XCTAssertEqual(st, 200)
        XCTAssertEqual(try json(body)["conversation"] as? String, conv)
        let p1 = (try json(body)["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0
        var c2: [String: Any] = ["messages": [["role": "user", "content": "What is my name?"]], "max_tokens": 8]
        c2["conversation"] = conv
        (st, body, _) = try s.request("POST", "/v1/chat/completions", json: c2)
        XCTAssertEqual(st, 200)
        let keptAnswer =
            ((try json(body)["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"]
            as? String
        let p2 = (try json(body)["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0
        XCTAssertGreaterThan(p1, 0)
        XCTAssertGreaterThan(p2, 0)
        // the same history sent statelessly: its prompt holds the whole history, the kept one only the new turn
        // (answers are not compared: a random model's text does not survive detokenizing and tokenizing again)
        let replay: [String: Any] = [
            "messages": [
                ["role": "user", "content": "My name is Ada."],
                ["role": "assistant", "content": try answer(s, c1.filter { $0.key != "conversation" })],
                ["role": "user", "content": "What is my name?"],
            ], "max_tokens": 8,
        ]
        (st, body, _) = try s.request("POST", "/v1/chat/completions", json: replay)
        XCTAssertEqual(st, 200)
        let p3 = (try json(body)["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0
        XCTAssertGreaterThan(p3, p2 + p1 / 2, "the stateless replay prefills the history again")
        XCTAssertNotNil(keptAnswer)
        // bad requests
        for (bad, param) in [
            ([:], "messages"), (["messages": [["role": "robot", "content": "x"]]], "messages[0].role"),
            (
                [
                    "messages": [
                        [
                            "role": "user",
                            "content": [
                                ["type": "input_audio", "input_audio": ["data": "!!!notbase64", "format": "wav"]]
                            ],
                        ]
                    ]
                ], "messages[0].content[0].input_audio.data"
            ),
            (["messages": [["role": "user", "content": "x"]], "temperature": "hot"], "temperature"),
            (["messages": [["role": "user", "content": "x"]], "modalities": ["video"]], "modalities"),
        ] as [([String: Any], String)] {
            (st, body, _) = try s.request("POST", "/v1/chat/completions", json: bad)
            XCTAssertEqual(st, 400, "\(bad)")
            XCTAssertEqual((try json(body)["error"] as? [String: Any])?["param"] as? String, param)
        }
    }

    func answer(_ s: ServeProcess, _ req: [String: Any]) throws -> String {
        let (_, body, _) = try s.request("POST", "/v1/chat/completions", json: req)
        return ((try json(body)["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"]
            as? String ?? ""
    }

    /// 24 kHz PCM16: `seconds` of quiet noise, loud noise (speech to an energy VAD) or both.
    func pcm(_ parts: [(seconds: Double, amplitude: Float)]) -> Data {
        var g = SeededRandom(seed: 7)
        var out: [Float] = []
        for p in parts {
            for _ in 0..<Int(p.seconds * 24000) { out.append(p.amplitude * Float(g.unit() * 2 - 1)) }
        }
        return Data(AudioCodec.pcm16(out))
    }

    /// The detector places the fixture's speech after a known silence and ignores hum under its band (200 Hz).
    func testVADPlacesSpeechAndIgnoresHum() throws {
        let clip = try WAVReader.parse(speechWAV, name: "speech")
        let rate = clip.sampleRate
        let lead = rate / 2
        var vad = VoiceActivityDetector(rate: rate, silenceMs: 300)
        var events: [VoiceActivityDetector.Event] = []
        let input = [Float](repeating: 0, count: lead) + clip.samples + [Float](repeating: 0, count: rate)
        for i in stride(from: 0, to: input.count, by: rate / 100) {
            events += vad.push(Array(input[i..<min(i + rate / 100, input.count)]))
        }
        guard case .started(let start)? = events.first, case .stopped(let end)? = events.last, events.count == 2
        else { return XCTFail("one speech segment expected: \(events)") }
        XCTAssertEqual(Double(start), 500, accuracy: 150, "speech starts after 0.5 s of silence")
        XCTAssertGreaterThan(end, start + 500)
        XCTAssertLessThanOrEqual(end, 500 + clip.samples.count * 1000 / rate + 100)
        // under a loud 50 Hz mains hum (as loud as the speech's peak) the speech is still found, where it is
        let peak = clip.samples.map(abs).max() ?? 1
        var hummed = VoiceActivityDetector(rate: rate, silenceMs: 300)
        let speechAt = rate
        let mixed = (0..<(speechAt + clip.samples.count + rate)).map { i -> Float in
            let s = i >= speechAt && i - speechAt < clip.samples.count ? clip.samples[i - speechAt] / peak * 0.4 : 0
            return s + 0.4 * Float(sin(2 * Double.pi * 50 * Double(i) / Double(rate)))
        }
        let heard = hummed.push(mixed)
        guard case .started(let s2)? = heard.first else { return XCTFail("no speech found under the hum: \(heard)") }
        XCTAssertEqual(Double(s2), 1000, accuracy: 150, "\(heard)")
    }

    func testRealtimePushToTalkVADBargeInAndErrors() throws {
        let s = try server()
        let ws = try WSClient(port: s.port, path: "/v1/realtime")
        defer { ws.close() }
        XCTAssertEqual(try ws.next()["type"] as? String, "session.created")
        // push-to-talk
        try ws.send([
            "type": "session.update",
            "session": [
                "audio": ["input": ["turn_detection": NSNull(), "transcription": ["model": "lfm2-audio"]]],
                "max_output_tokens": 30, "greedy": true,
            ],
        ])
        XCTAssertEqual(try ws.next()["type"] as? String, "session.updated")
        // unknown events and bad audio are errors that leave the session usable
        try ws.send(["type": "no.such.event"])
        XCTAssertEqual(try ws.next()["type"] as? String, "error")
        try ws.send(["type": "input_audio_buffer.append", "audio": "%%%"])
        XCTAssertEqual(try ws.next()["type"] as? String, "error")
        try ws.sendText("not json")
        XCTAssertEqual(try ws.next()["type"] as? String, "error")
        let speech = pcm([(0.2, 0.001), (1.0, 0.3), (0.2, 0.001)])
        try ws.send(["type": "input_audio_buffer.append", "audio": speech.base64EncodedString()])
        try ws.send(["type": "input_audio_buffer.commit"])
        XCTAssertEqual(try ws.next()["type"] as? String, "input_audio_buffer.committed")
        XCTAssertEqual(try ws.next()["type"] as? String, "conversation.item.created")
        try ws.send(["type": "response.create"])
        var types: [String] = []
        var done: [String: Any] = [:]
        while true {
            let e = try ws.next()
            types.append(e["type"] as! String)
            if e["type"] as? String == "response.done" { done = e; break }
        }
        XCTAssertEqual(types.first, "response.created")
        XCTAssertTrue(types.contains("response.output_audio.delta"), "\(types)")
        XCTAssertTrue(types.contains("response.output_audio.done"))
        let resp = done["response"] as? [String: Any]
        XCTAssertNotNil(resp?["usage"])
        XCTAssertNotNil(resp?["time_to_first_audio"] as? Double)
        // the user's audio is transcribed after the response
        let heard = try ws.next()
        XCTAssertEqual(heard["type"] as? String, "conversation.item.input_audio_transcription.completed")
        XCTAssertNotNil(heard["transcript"] as? String)
        // server VAD: speech then silence starts a response by itself
        try ws.send([
            "type": "session.update",
            "session": [
                "audio": [
                    "input": [
                        "turn_detection": ["type": "server_vad", "silence_duration_ms": 300], "transcription": NSNull(),
                    ]
                ],
                "max_output_tokens": 400,
            ],
        ])
        XCTAssertEqual(try ws.next()["type"] as? String, "session.updated")
        try ws.send([
            "type": "input_audio_buffer.append",
            "audio": pcm([(0.3, 0.001), (0.8, 0.3), (0.6, 0.001)]).base64EncodedString(),
        ])
        var seen: [String] = []
        var gotAudio = false
        while !gotAudio {
            let e = try ws.next()
            seen.append(e["type"] as! String)
            if e["type"] as? String == "response.output_audio.delta" { gotAudio = true }
        }
        XCTAssertEqual(
            Array(seen.prefix(2)), ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"])
        XCTAssertTrue(seen.contains("response.created"))
        // barge-in: speech during the response cancels it
        try ws.send(["type": "input_audio_buffer.append", "audio": pcm([(0.5, 0.3)]).base64EncodedString()])
        var status: String?
        var started = false
        var deltasAfter = 0
        var item = ""
        while status == nil {
            let e = try ws.next()
            if e["type"] as? String == "input_audio_buffer.speech_started" { started = true }
            if started && e["type"] as? String == "response.output_audio.delta" { deltasAfter += 1 }
            if e["type"] as? String == "response.done" {
                let r = e["response"] as? [String: Any]
                status = r?["status"] as? String
                item = ((r?["output"] as? [[String: Any]])?.first?["id"] as? String) ?? ""
            }
        }
        XCTAssertTrue(started)
        XCTAssertEqual(status, "cancelled")
        XCTAssertEqual(deltasAfter, 0, "no audio after speech started")
        // the client says what it played
        try ws.send(["type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 40])
        let t = try ws.next()
        XCTAssertEqual(t["type"] as? String, "conversation.item.truncated", "\(t)")
        XCTAssertEqual(t["audio_end_ms"] as? Int, 40)
        try ws.send(["type": "conversation.item.truncate", "item_id": "item_nope", "audio_end_ms": 0])
        XCTAssertEqual(try ws.next()["type"] as? String, "error")
        try ws.send(["type": "response.cancel"])
        XCTAssertEqual(try ws.next()["type"] as? String, "error", "nothing to cancel")
    }

    func testRealtimeBetaClientGetsBetaEventNames() throws {
        let s = try server()
        let ws = try WSClient(port: s.port, path: "/v1/realtime", headers: ["OpenAI-Beta": "realtime=v1"])
        defer { ws.close() }
        XCTAssertEqual(try ws.next()["type"] as? String, "session.created")
        // the beta session shape: top-level turn_detection
        try ws.send(["type": "session.update", "session": ["turn_detection": NSNull(), "max_output_tokens": 30]])
        XCTAssertEqual(try ws.next()["type"] as? String, "session.updated")
        let speech = pcm([(0.2, 0.001), (0.8, 0.3), (0.2, 0.001)])
        try ws.send(["type": "input_audio_buffer.append", "audio": speech.base64EncodedString()])
        try ws.send(["type": "input_audio_buffer.commit"])
        try ws.send(["type": "response.create"])
        var types: [String] = [], parts: [String] = []
        while true {
            let e = try ws.next()
            let t = e["type"] as! String
            types.append(t)
            if t == "conversation.item.created", let item = e["item"] as? [String: Any],
                let c = item["content"] as? [[String: Any]]
            {
                parts += c.compactMap { $0["type"] as? String }
            }
            if t == "response.done" { break }
        }
        XCTAssertTrue(types.contains("response.audio.delta"), "\(types)")
        XCTAssertTrue(types.contains("response.audio.done"))
        XCTAssertTrue(types.contains("response.audio_transcript.done"))
        XCTAssertFalse(types.contains { $0.hasPrefix("response.output_") }, "\(types)")
        XCTAssertTrue(parts.contains("audio") && !parts.contains("output_audio"), "\(parts)")
    }

    func testAuthLimitsUploadAndShutdown() throws {
        let s = try ServeProcess(
            bundle: try Self.bundle(),
            extra: [
                "--api-key", "sekret", "--max-conversations", "1", "--max-upload", "1", "--cors", "http://app.test",
            ])
        var (st, body, _) = try s.request("GET", "/health")
        XCTAssertEqual(st, 200)
        (st, body, _) = try s.request("GET", "/v1/models")
        XCTAssertEqual(st, 401)
        XCTAssertEqual((try json(body)["error"] as? [String: Any])?["code"] as? String, "invalid_api_key")
        s.key = "sekret"
        (st, _, _) = try s.request("GET", "/v1/models")
        XCTAssertEqual(st, 200)
        // --cors: a preflight needs no key; answers carry the origin
        s.key = nil
        var h: [String: String]
        (st, _, h) = try s.request(
            "OPTIONS", "/v1/chat/completions",
            headers: ["Origin": "http://app.test", "Access-Control-Request-Method": "POST"])
        XCTAssertEqual(st, 204, "a preflight answer has no body")
        XCTAssertEqual(h["Access-Control-Allow-Origin"], "http://app.test")
        s.key = "sekret"
        (st, _, h) = try s.request("GET", "/v1/models", headers: ["Origin": "http://app.test"])
        XCTAssertEqual(h["Access-Control-Allow-Origin"], "http://app.test")
        (st, body, _) = try s.request("POST", "/v1/audio/speech", body: Data(count: 2 << 20))
        XCTAssertEqual(st, 413)
        // a realtime session holds the one conversation: a chat gets a 429
        let ws = try WSClient(port: s.port, path: "/v1/realtime", headers: ["Authorization": "Bearer sekret"])
        XCTAssertEqual(try ws.next()["type"] as? String, "session.created")
        (st, body, _) = try s.request(
            "POST", "/v1/chat/completions", json: ["messages": [["role": "user", "content": "hi"]], "max_tokens": 2])
        XCTAssertEqual(st, 429, String(decoding: body, as: UTF8.self))
        ws.close()
        // the server frees the slot when it sees the close: poll (a slow machine may take longer than a fixed sleep)
        let freed = Date().addingTimeInterval(10)
        repeat {
            Thread.sleep(forTimeInterval: 0.1)
            let hi: [String: Any] = ["messages": [["role": "user", "content": "hi"]], "max_tokens": 2]
            (st, body, _) = try s.request("POST", "/v1/chat/completions", json: hi)
        } while st == 429 && Date() < freed
        XCTAssertEqual(st, 200, String(decoding: body, as: UTF8.self))
        // 200 connections opened and dropped leave it answering
        for _ in 0..<200 { try? RawSocket(port: s.port).close() }
        (st, _, _) = try s.request("GET", "/health")
        XCTAssertEqual(st, 200)
        // SIGTERM with a stream in flight: the turn is cancelled, the process exits 0
        let streaming = Thread {
            _ = try? s.request(
                "POST", "/v1/audio/speech",
                json: ["input": "Speak now.", "voice": "us-female", "max_tokens": 100_000, "stream_format": "sse"])
        }
        streaming.start()
        Thread.sleep(forTimeInterval: 1)
        let t0 = Date()
        XCTAssertEqual(s.terminate(), 0, "SIGTERM exits 0")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 20)
    }
}

func json(_ d: Data) throws -> [String: Any] {
    guard let o = try JSONSerialization.jsonObject(with: d) as? [String: Any] else {
        throw NSError(
            domain: "json", code: 1, userInfo: [NSLocalizedDescriptionKey: String(decoding: d, as: UTF8.self)])
    }
    return o
}

func sseEvents(_ body: Data) -> [[String: Any]] {
    String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n").compactMap { block in
        guard block.hasPrefix("data: "), !block.hasPrefix("data: [DONE]") else { return nil }
        return try? json(Data(block.dropFirst(6).utf8))
    }
}

/// Path of a built executable of this package (beside the test bundle).
func serveTool(_ name: String) -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let c = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: c) { return c }
        dir = dir.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path
}

func runServeTool(_ args: [String]) throws -> (Int32, String, String) {
    let r = try runProcess(serveTool("lfm-run"), args)
    return (r.status, r.out, r.err)
}

/// Polls until `process` exits; false if it is still running after `seconds`.
func waitForExit(_ process: Process, seconds: Double) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    return !process.isRunning
}

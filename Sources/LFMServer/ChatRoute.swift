import Foundation
import Hummingbird
import MiniRuntime
import NIOCore

/// A chat request's messages: the system prompt, past exchanges and the new user turn.
struct ChatInput {
    var system: String?
    var history: [(user: [UserContent], assistant: String)] = []
    var user: [UserContent] = []
}

extension HTTPRoutes {
    func parseMessages(_ arr: [Any]) throws -> ChatInput {
        guard !arr.isEmpty else { throw APIError.bad("'messages' must not be empty", param: "messages") }
        var input = ChatInput()
        var systems: [String] = []
        var pendingUser: [UserContent] = []
        var sawTurn = false
        for (i, any) in arr.enumerated() {
            let p = "messages[\(i)]"
            guard let o = any as? [String: Any] else { throw APIError.bad("'\(p)' must be an object", param: p) }
            let m = Fields(o, prefix: p + ".")
            guard let role = try m.string("role") else {
                throw APIError.bad("'\(p).role' is required", param: p + ".role", code: "missing_field")
            }
            switch role {
            case "system", "developer":
                guard !sawTurn else {
                    throw APIError.bad(
                        "a system message after the first user message is not supported", param: p + ".role")
                }
                systems.append(try textOnly(m, p))
            case "user":
                sawTurn = true
                pendingUser += try userContent(m, p)
            case "assistant":
                guard sawTurn, !pendingUser.isEmpty else {
                    throw APIError.bad("an assistant message must follow a user message", param: p + ".role")
                }
                var text = try m.has("content") ? textOnly(m, p) : ""
                if text.isEmpty, let a = try m.object("audio"), let t = try a.string("transcript") { text = t }
                input.history.append((pendingUser, text))
                pendingUser = []
            default:
                throw APIError.bad(
                    "'\(p).role' must be system, developer, user or assistant (got '\(role)')", param: p + ".role")
            }
        }
        guard !pendingUser.isEmpty else {
            throw APIError.bad("the last message must be a user message", param: "messages")
        }
        input.user = pendingUser
        input.system = systems.isEmpty ? nil : systems.joined(separator: "\n")
        return input
    }

    func textOnly(_ m: Fields, _ p: String) throws -> String {
        if let s = m.o["content"] as? String { return s }
        guard let parts = try m.array("content") else { return "" }
        var out = ""
        for (j, part) in parts.enumerated() {
            guard let o = part as? [String: Any], o["type"] as? String == "text", let t = o["text"] as? String else {
                throw APIError.bad("'\(p).content[\(j)]' must be a text part", param: "\(p).content[\(j)]")
            }
            out += t
        }
        return out
    }

    func userContent(_ m: Fields, _ p: String) throws -> [UserContent] {
        if let s = m.o["content"] as? String { return [.text(s)] }
        guard let parts = try m.array("content") else {
            throw APIError.bad("'\(p).content' is required", param: p + ".content", code: "missing_field")
        }
        var out: [UserContent] = []
        for (j, part) in parts.enumerated() {
            let q = "\(p).content[\(j)]"
            guard let o = part as? [String: Any] else { throw APIError.bad("'\(q)' must be an object", param: q) }
            let f = Fields(o, prefix: q + ".")
            switch try f.string("type") {
            case "text":
                guard let t = try f.string("text") else {
                    throw APIError.bad("'\(q).text' is required", param: q + ".text", code: "missing_field")
                }
                out.append(.text(t))
            case "input_audio":
                guard let a = try f.object("input_audio"), let d = try a.string("data") else {
                    throw APIError.bad(
                        "'\(q).input_audio.data' is required (base64)", param: q + ".input_audio.data",
                        code: "missing_field")
                }
                let format = try a.string("format") ?? "wav"
                guard ["wav", "flac", "mp3", "ogg", "opus"].contains(format) else {
                    throw APIError.bad(
                        "'\(q).input_audio.format' must be wav, flac, mp3 or ogg", param: q + ".input_audio.format")
                }
                guard let bytes = Data(base64Encoded: d, options: .ignoreUnknownCharacters) else {
                    throw APIError.bad(
                        "'\(q).input_audio.data' is not valid base64", param: q + ".input_audio.data",
                        code: "invalid_audio")
                }
                do { out.append(.audio(try AudioCodec.decode([UInt8](bytes), name: q + ".input_audio"))) } catch {
                    throw APIError.bad("\(error)", param: q + ".input_audio.data", code: "invalid_audio")
                }
            default:
                throw APIError.bad("'\(q).type' must be text or input_audio", param: q + ".type")
            }
        }
        guard !out.isEmpty else { throw APIError.bad("'\(p).content' is empty", param: p + ".content") }
        return out
    }

    func chat(_ req: Request, _ ctx: ServerContext) async throws -> Response {
        try checkOpen()
        let f = try Fields.parse(Data(buffer: try await body(req)))
        guard let msgs = try f.array("messages") else {
            throw APIError.bad("'messages' is required", param: "messages", code: "missing_field")
        }
        let input = try parseMessages(msgs)
        var audioOut = false
        if let mods = try f.array("modalities") {
            for (i, m) in mods.enumerated() {
                guard let s = m as? String, s == "text" || s == "audio" else {
                    throw APIError.bad("'modalities[\(i)]' must be text or audio", param: "modalities")
                }
                if s == "audio" { audioOut = true }
            }
        }
        var voice = Voice.ukFemale
        var audioFormat = "pcm16"
        if let a = try f.object("audio") {
            voice = try Voices.parse(try a.string("voice"), param: "audio.voice")
            audioFormat = try a.string("format") ?? (try f.bool("stream") == true ? "pcm16" : "wav")
            guard ["wav", "pcm16", "flac", "mp3", "opus"].contains(audioFormat) else {
                throw APIError.bad(
                    "'audio.format' must be wav or pcm16 (flac, mp3, opus unstreamed)", param: "audio.format")
            }
        } else if audioOut {
            audioFormat = "wav"
        }
        _ = voice  // the interleaved mode has no voice prompt; the system message sets the speaker
        let stream = try f.bool("stream") ?? false
        let speaks = audioOut
        if stream && !["pcm16", "wav"].contains(audioFormat) {
            throw APIError.bad("a streamed answer's audio is pcm16", param: "audio.format")
        }
        let maxTokens =
            try f.int("max_completion_tokens", in: 1...100_000) ?? f.int("max_tokens", in: 1...100_000) ?? 512
        let temperature = try f.number("temperature", in: 0...100).map { Float($0) }
        let topK = try f.int("top_k", in: 1...1_000_000)
        let topP = try f.number("top_p", in: 0.000001...1).map { Float($0) }
        let seed = UInt64(try f.int("seed", in: 0...Int(Int32.max)) ?? 0)
        let greedy = try f.bool("greedy") ?? false
        let aTemp = try f.number("audio_temperature", in: 0...100).map { Float($0) }
        let aTopK = try f.int("audio_top_k", in: 1...100_000)
        let decoder = try decoderParam(f)
        let convId = try f.string("conversation")
        if let c = convId {
            guard !c.isEmpty, c.count <= 128, c.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) }) else {
                throw APIError.bad("'conversation' must be 1 to 128 letters, digits or -_.:", param: "conversation")
            }
        }
        if audioOut && model.audioHead == nil {
            throw APIError.bad(
                "this bundle has no audio head: it cannot speak", param: "modalities", code: "unsupported")
        }
        if input.user.contains(where: { if case .audio = $0 { return true } else { return false } })
            && model.audioEncoder == nil
        {
            throw APIError.bad(
                "this bundle has no audio encoder: it cannot hear", param: "messages", code: "unsupported")
        }
        let sampling =
            greedy || temperature == nil || temperature == 0
            ? SamplingParams(seed: seed) : SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let audioSampling = TaskPreset.chat.audioSampling(
            temperature: aTemp, topK: aTopK, seed: seed &+ 1, greedy: greedy)
        let system = input.system ?? (audioOut ? TaskPreset.chat.system : nil)
        let registry = state.conversations
        let conv: Conversation
        if let c = convId {
            conv = try registry.acquire(id: c) { Conversation(model: model, system: system) }
        } else {
            try registry.acquireTransient()
            conv = Conversation(model: model, system: system)
        }
        let release: @Sendable () -> Void = {
            if let c = convId { registry.release(id: c) } else { registry.releaseTransient() }
        }
        let events: TurnEvents
        do {
            for h in input.history { try conv.appendExchange(user: h.user, assistant: h.assistant) }
            let s = conv.reply(
                to: input.user, mode: audioOut ? .interleaved : .text, maxTokens: maxTokens, sampling: sampling,
                audioSampling: audioSampling, audio: audioOut ? .speech(decoder: decoder) : .codes)
            events = TurnEvents(s, conversation: conv, registry: registry)
            try await events.start()
        } catch {
            release()
            throw error
        }
        let id = newId("chatcmpl-"), audioId = newId("audio_"), created = Int(Date().timeIntervalSince1970)
        let modelId = state.modelId, metrics = state.metrics, m = model
        let t0 = Date()
        @Sendable func usage(_ st: GenerationStats?) -> [String: Any] {
            let p = st?.promptTokens ?? 0, c = st?.generatedTokens ?? 0
            return ["prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c]
        }
        @Sendable func timings(_ st: GenerationStats?) -> [String: Any] {
            [
                "time_to_first_token": st?.timeToFirstToken ?? 0, "time_to_first_audio": st?.timeToFirstAudio ?? 0,
                "prefill_seconds": st?.prefillSeconds ?? 0, "audio_frames": st?.audioFrames ?? 0,
            ]
        }
        @Sendable func record(_ st: GenerationStats?) {
            guard let st, st.speechSamples > 0 else { return }
            let wall = Date().timeIntervalSince(t0)
            metrics.spoke(
                timeToFirstAudio: st.timeToFirstAudio,
                realTimeFactor: wall > 0 ? Double(st.speechSamples) / Double(SpeechDecoder.sampleRate) / wall : 0)
        }
        if stream {
            return sse(
                { send in
                    defer { events.finish(); release() }
                    func chunk(
                        _ delta: [String: Any], finish: String? = nil, extra: [String: Any] = [:]
                    ) -> [String: Any] {
                        var o: [String: Any] = [
                            "id": id, "object": "chat.completion.chunk", "created": created, "model": modelId,
                            "choices": [["index": 0, "delta": delta, "finish_reason": orNull(finish)]],
                        ]
                        if let c = convId { o["conversation"] = c }
                        for (k, v) in extra { o[k] = v }
                        return o
                    }
                    try await send(chunk(["role": "assistant", "content": ""]))
                    var frames = FrameChunker()
                    var stats: GenerationStats?
                    while let e = try await events.next() {
                        switch e {
                        case .text(let tid, let piece):
                            let t = visibleText(tid, piece, m)
                            if t.isEmpty { continue }
                            var d: [String: Any] = ["content": t]
                            if speaks { d["audio"] = ["id": audioId, "transcript": t] }
                            try await send(chunk(d))
                        case .samples(let s):
                            if let out = frames.push(s) {
                                try await send(
                                    chunk([
                                        "audio": [
                                            "id": audioId, "data": Data(AudioCodec.pcm16(out)).base64EncodedString(),
                                        ]
                                    ]))
                            }
                        case .done(let st): stats = st
                        case .audio: break
                        }
                    }
                    if let out = frames.flush() {
                        try await send(
                            chunk(["audio": ["id": audioId, "data": Data(AudioCodec.pcm16(out)).base64EncodedString()]])
                        )
                    }
                    record(stats)
                    try await send(
                        chunk(
                            [:], finish: finishReason(stats?.stopReason ?? .maxTokens),
                            extra: ["usage": usage(stats), "timings": timings(stats)]))
                }, done: true)
        }
        defer { events.finish(); release() }
        var text = ""
        var samples: [Float] = []
        var stats: GenerationStats?
        while let e = try await events.next() {
            switch e {
            case .text(let tid, let piece): text += visibleText(tid, piece, m)
            case .samples(let s): samples += s
            case .done(let st): stats = st
            case .audio: break
            }
        }
        record(stats)
        var message: [String: Any] = ["role": "assistant", "content": text]
        if audioOut {
            let bytes: [UInt8]
            switch audioFormat {
            case "pcm16": bytes = AudioCodec.pcm16(samples)
            case "wav":
                bytes =
                    AudioCodec.wavHeader(sampleRate: SpeechDecoder.sampleRate, dataBytes: samples.count * 2)
                    + AudioCodec.pcm16(samples)
            default:
                bytes = try AudioCodec.encode(
                    samples, sampleRate: SpeechDecoder.sampleRate,
                    format: AudioCodec.OutputFormat(rawValue: audioFormat)!)
            }
            message["audio"] = [
                "id": audioId, "data": Data(bytes).base64EncodedString(), "transcript": text,
                "expires_at": created + 3600,
            ]
        }
        var o: [String: Any] = [
            "id": id, "object": "chat.completion", "created": created, "model": modelId,
            "choices": [
                ["index": 0, "message": message, "finish_reason": finishReason(stats?.stopReason ?? .maxTokens)]
            ],
            "usage": usage(stats), "timings": timings(stats),
        ]
        if let c = convId { o["conversation"] = c }
        return jsonResponse(o)
    }
}

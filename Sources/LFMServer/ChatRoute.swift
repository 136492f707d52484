import AudioFiles
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

    /// `POST /v1/chat/completions` (docs/serving.md): validate, open the turn, then answer streamed or whole.
    func chat(_ req: Request, _ ctx: ServerContext) async throws -> Response {
        try checkOpen()
        let r = try parseChatRequest(Fields.parse(Data(buffer: try await body(req))), header: conversationHeader(req))
        let turn = try await openChatTurn(r)
        return r.stream ? streamChat(r, turn) : try await collectChat(r, turn)
    }

    /// The `X-Conversation-Id` header: an alias of the `conversation` field that a proxy can route on
    /// (docs/deploy.md).
    func conversationHeader(_ req: Request) -> String? {
        req.headers.first { $0.name.canonicalName == "x-conversation-id" }?.value
    }

    /// Every field of a chat request, checked in the order the errors are reported.
    func parseChatRequest(_ f: Fields, header: String?) throws -> ChatRequest {
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
        var audioFormat = "pcm16"
        if let a = try f.object("audio") {
            // the interleaved mode has no voice prompt (the system message sets the speaker): checked, not used
            _ = try Voices.parse(try a.string("voice"), param: "audio.voice")
            audioFormat = try a.string("format") ?? (try f.bool("stream") == true ? "pcm16" : "wav")
            guard ["wav", "pcm16", "flac", "mp3", "opus"].contains(audioFormat) else {
                throw APIError.bad(
                    "'audio.format' must be wav or pcm16 (flac, mp3, opus unstreamed)", param: "audio.format")
            }
        } else if audioOut {
            audioFormat = "wav"
        }
        let stream = try f.bool("stream") ?? false
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
        let conversation = try conversationId(try f.string("conversation"), header: header)
        if audioOut && model.audioHead == nil {
            throw APIError.bad(
                "this bundle has no audio head: it cannot speak", param: "modalities", code: "unsupported")
        }
        if input.hasAudio && model.audioEncoder == nil {
            throw APIError.bad(
                "this bundle has no audio encoder: it cannot hear", param: "messages", code: "unsupported")
        }
        try checkTextFits(input)
        let sampling =
            greedy || temperature == nil || temperature == 0
            ? SamplingParams(seed: seed) : SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let audioSampling = TaskPreset.chat.audioSampling(
            temperature: aTemp, topK: aTopK, seed: seed &+ 1, greedy: greedy)
        return ChatRequest(
            input: input, audioOut: audioOut, audioFormat: audioFormat, stream: stream, maxTokens: maxTokens,
            sampling: sampling, audioSampling: audioSampling, decoder: decoder, conversation: conversation,
            system: input.system ?? (audioOut ? TaskPreset.chat.system : nil))
    }

    /// The conversation id from the body or the `X-Conversation-Id` header (both: they must agree).
    func conversationId(_ field: String?, header: String?) throws -> String? {
        if let field, let header, field != header {
            throw APIError.bad(
                "'conversation' ('\(field)') and the X-Conversation-Id header ('\(header)') differ",
                param: "conversation")
        }
        guard let c = field ?? header else { return nil }
        guard !c.isEmpty, c.count <= 128, c.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) }) else {
            throw APIError.bad("'conversation' must be 1 to 128 letters, digits or -_.:", param: "conversation")
        }
        return c
    }

    /// Text that cannot fit the context is refused before it is tokenized (tokenizing megabytes would hold a
    /// conversation slot for minutes): no token covers more than `maxTokenBytes` bytes, so text over
    /// `contextLimit × maxTokenBytes` bytes needs more positions than the context has.
    func checkTextFits(_ input: ChatInput) throws {
        var bytes = input.system?.utf8.count ?? 0
        for part in input.history.flatMap({ $0.user }) + input.user {
            if case .text(let t) = part { bytes += t.utf8.count }
        }
        bytes += input.history.reduce(0) { $0 + $1.assistant.utf8.count }
        if bytes > state.maxTextBytes {
            throw APIError.bad(
                "the messages hold \(bytes) bytes of text: more than a context of \(state.contextLimit) positions can "
                    + "take (--ctx)", param: "messages", code: "context_length_exceeded")
        }
    }

    /// Takes a conversation (the kept one, or a new stateless one), adds the request's history and starts the turn;
    /// errors until the first event (bad audio, a context overflow) are the request's.
    func openChatTurn(_ r: ChatRequest) async throws -> ChatTurn {
        let registry = state.conversations
        let conv: Conversation
        if let c = r.conversation {
            conv = try registry.acquire(id: c) { Conversation(model: model, system: r.system) }
        } else {
            try registry.acquireTransient()
            conv = Conversation(model: model, system: r.system)
        }
        let id = r.conversation
        let release: @Sendable () -> Void = {
            if let id { registry.release(id: id) } else { registry.releaseTransient() }
        }
        do {
            for h in r.input.history { try conv.appendExchange(user: h.user, assistant: h.assistant) }
            let s = conv.reply(
                to: r.input.user, mode: r.audioOut ? .interleaved : .text, maxTokens: r.maxTokens,
                sampling: r.sampling, audioSampling: r.audioSampling,
                audio: r.audioOut ? .speech(decoder: r.decoder) : .codes)
            let events = TurnEvents(s, conversation: conv, registry: registry)
            try await events.start()
            return ChatTurn(
                events: events, release: release, modelId: state.modelId, metrics: state.metrics, model: model)
        } catch {
            release()
            throw error
        }
    }

    /// SSE chunks: `delta.content`, `delta.audio` (transcript, base64 PCM16 in whole 80 ms frames), a last chunk
    /// with `finish_reason`, `usage` and `timings`, then `data: [DONE]`.
    func streamChat(_ r: ChatRequest, _ turn: ChatTurn) -> Response {
        sse(
            { send in
                defer { turn.end() }
                try await send(turn.chunk(r, ["role": "assistant", "content": ""]))
                var frames = FrameChunker()
                var stats: GenerationStats?
                while let e = try await turn.events.next() {
                    switch e {
                    case .text(let tid, let piece):
                        let t = visibleText(tid, piece, turn.model)
                        if t.isEmpty { continue }
                        var d: [String: Any] = ["content": t]
                        if r.audioOut { d["audio"] = ["id": turn.audioId, "transcript": t] }
                        try await send(turn.chunk(r, d))
                    case .samples(let s):
                        if let out = frames.push(s) { try await send(turn.chunk(r, turn.audioDelta(out))) }
                    case .done(let st): stats = st
                    case .audio: break
                    }
                }
                if let out = frames.flush() { try await send(turn.chunk(r, turn.audioDelta(out))) }
                turn.record(stats)
                try await send(
                    turn.chunk(
                        r, [:], finish: finishReason(stats?.stopReason ?? .maxTokens),
                        extra: ["usage": turn.usage(stats), "timings": turn.timings(stats)]))
            }, done: true)
    }

    /// The whole answer: `choices[0].message.content` and, with audio out, `message.audio`.
    func collectChat(_ r: ChatRequest, _ turn: ChatTurn) async throws -> Response {
        defer { turn.end() }
        var text = ""
        var samples: [Float] = []
        var stats: GenerationStats?
        while let e = try await turn.events.next() {
            switch e {
            case .text(let tid, let piece): text += visibleText(tid, piece, turn.model)
            case .samples(let s): samples += s
            case .done(let st): stats = st
            case .audio: break
            }
        }
        turn.record(stats)
        var message: [String: Any] = ["role": "assistant", "content": text]
        if r.audioOut {
            message["audio"] = [
                "id": turn.audioId, "data": Data(try encodeAnswer(samples, r.audioFormat)).base64EncodedString(),
                "transcript": text, "expires_at": turn.created + 3600,
            ]
        }
        var o: [String: Any] = [
            "id": turn.id, "object": "chat.completion", "created": turn.created, "model": turn.modelId,
            "choices": [
                ["index": 0, "message": message, "finish_reason": finishReason(stats?.stopReason ?? .maxTokens)]
            ],
            "usage": turn.usage(stats), "timings": turn.timings(stats),
        ]
        if let c = r.conversation { o["conversation"] = c }
        return jsonResponse(o)
    }

    /// An unstreamed answer's audio in the requested format.
    func encodeAnswer(_ samples: [Float], _ format: String) throws -> [UInt8] {
        switch format {
        case "pcm16": return AudioCodec.pcm16(samples)
        case "wav":
            return AudioCodec.wavHeader(sampleRate: SpeechDecoder.sampleRate, dataBytes: samples.count * 2)
                + AudioCodec.pcm16(samples)
        default:
            return try AudioCodec.encode(
                samples, sampleRate: SpeechDecoder.sampleRate, format: AudioCodec.OutputFormat(rawValue: format)!)
        }
    }
}

/// A validated chat completion request.
struct ChatRequest {
    var input: ChatInput
    var audioOut: Bool
    var audioFormat: String
    var stream: Bool
    var maxTokens: Int
    var sampling: SamplingParams
    var audioSampling: SamplingParams
    var decoder: DecoderKind?
    var conversation: String?
    /// The request's system message, or the reference's interleaved-mode prompt with audio out.
    var system: String?
}

extension ChatInput {
    var hasAudio: Bool {
        user.contains { if case .audio = $0 { return true } else { return false } }
    }
}

/// A running chat turn and what its answer carries: ids, the shape of its chunks, usage, timings, metrics.
struct ChatTurn: Sendable {
    let events: TurnEvents
    let release: @Sendable () -> Void
    let modelId: String
    let metrics: Metrics
    let model: LFMModel
    let id = newId("chatcmpl-")
    let audioId = newId("audio_")
    let created = Int(Date().timeIntervalSince1970)
    let t0 = Date()

    /// Ends the turn (cancelling it if still running) and gives the conversation back.
    func end() {
        events.finish()
        release()
    }

    func chunk(
        _ r: ChatRequest, _ delta: [String: Any], finish: String? = nil, extra: [String: Any] = [:]
    ) -> [String: Any] {
        var o: [String: Any] = [
            "id": id, "object": "chat.completion.chunk", "created": created, "model": modelId,
            "choices": [["index": 0, "delta": delta, "finish_reason": orNull(finish)]],
        ]
        if let c = r.conversation { o["conversation"] = c }
        for (k, v) in extra { o[k] = v }
        return o
    }

    func audioDelta(_ samples: [Float]) -> [String: Any] {
        ["audio": ["id": audioId, "data": Data(AudioCodec.pcm16(samples)).base64EncodedString()]]
    }

    func usage(_ st: GenerationStats?) -> [String: Any] {
        let p = st?.promptTokens ?? 0, c = st?.generatedTokens ?? 0
        return ["prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c]
    }

    func timings(_ st: GenerationStats?) -> [String: Any] {
        [
            "time_to_first_token": st?.timeToFirstToken ?? 0, "time_to_first_audio": st?.timeToFirstAudio ?? 0,
            "prefill_seconds": st?.prefillSeconds ?? 0, "audio_frames": st?.audioFrames ?? 0,
        ]
    }

    /// Time to first audio and real-time factor, for /metrics (turns that spoke).
    func record(_ st: GenerationStats?) {
        guard let st, st.speechSamples > 0 else { return }
        let wall = Date().timeIntervalSince(t0)
        metrics.spoke(
            timeToFirstAudio: st.timeToFirstAudio,
            realTimeFactor: wall > 0 ? Double(st.speechSamples) / Double(SpeechDecoder.sampleRate) / wall : 0)
    }
}

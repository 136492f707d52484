import AudioFiles
import Foundation
import Hummingbird
import HummingbirdWebSocket
import MiniRuntime
import NIOCore

/// `GET /v1/realtime`: OpenAI Realtime (GA event names, beta aliases accepted) over a WebSocket.
struct RealtimeRoute: Sendable {
    let state: ServerState

    func register(_ router: Router<ServerContext>) {
        let state = self.state
        router.ws(
            "/v1/realtime",
            shouldUpgrade: { req, _ in
                if state.shuttingDown.load(ordering: .relaxed) {
                    throw APIError(.serviceUnavailable, "the server is shutting down", code: "shutting_down")
                }
                guard state.model.audioHead != nil, state.model.audioEncoder != nil else {
                    throw APIError.bad("this bundle cannot hear and speak: no realtime sessions", code: "unsupported")
                }
                try state.conversations.acquireTransient()
                var headers: HTTPFields = [:]
                // a browser that offers subprotocols needs one echoed back
                if let p = req.headers[.secWebSocketProtocol] {
                    let offered = p.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    if let pick = offered.first(where: { $0 == "realtime" })
                        ?? offered.first(where: { !$0.hasPrefix("openai-insecure-api-key.") })
                    {
                        headers[.secWebSocketProtocol] = pick
                    }
                }
                return .upgrade(headers)
            },
            onUpgrade: { inbound, outbound, context in
                let session = RealtimeSession(
                    state: state, outbound: outbound, betaNames: RealtimeSession.wantsBeta(context.request.headers))
                let hook = state.conversations.addShutdownHook { Task { await session.shutdown() } }
                defer {
                    state.conversations.removeShutdownHook(hook)
                    state.conversations.releaseTransient()
                }
                await session.start()
                do {
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        switch message {
                        case .text(let s): await session.handle(s)
                        case .binary(var b):
                            // extension: a binary message is raw PCM16 at the input rate
                            await session.append(pcm: b.readBytes(length: b.readableBytes) ?? [])
                        }
                    }
                } catch {}
                await session.close()
            })
    }
}

actor RealtimeSession {
    let state: ServerState
    let out: WebSocketOutboundWriter
    let model: LFMModel
    let id = newId("sess_")
    // session settings
    var inputRate = 24000
    var vadEnabled = true
    var threshold = 0.5
    var prefixMs = 300
    var silenceMs = 500
    var createResponse = true
    var interruptResponse = true
    var instructions: String?
    var voice = "uk-female"
    var greedy = false
    var maxOutputTokens = 1024
    // conversation
    var conversation: Conversation
    var turns = 0
    var pending: [UserContent] = []
    var lastItemId: String?
    // input audio: the samples since the last commit or clear, and where they start on the input timeline
    var buffer: [Float] = []
    var bufferStart = 0
    var vad: VoiceActivityDetector
    var speechItem: String?
    var speechStoppedAt: Date?
    // the response in progress
    struct Running {
        let id: String
        let itemId: String
        var cancelled = false
        var sentSamples = 0
        var task: Task<Void, Never>?
    }
    var response: Running?
    var closed = false
    /// Outbound messages in the order `send` was called, drained by one writer task: a message decided before
    /// another (an audio delta before a barge-in's speech_started) reaches the client first, whatever the actor runs
    /// while a socket write is suspended. A turn's output is bounded by `max_output_tokens`.
    let outbox: AsyncStream<String>.Continuation
    let outboxDrained: Task<Void, Never>
    // input transcription (`audio.input.transcription`): run after each response, off the critical path
    var transcribe = false
    var toTranscribe: [(id: String, clip: AudioClip)] = []

    /// Beta clients (header `OpenAI-Beta: realtime=v1`, or the subprotocol `openai-beta.realtime-v1` from a
    /// browser) get the beta names of the output events and content parts.
    let betaNames: Bool

    static func wantsBeta(_ headers: HTTPFields) -> Bool {
        if headers.contains(where: { $0.name.canonicalName == "openai-beta" && $0.value.contains("realtime=v1") }) {
            return true
        }
        return headers[.secWebSocketProtocol]?.contains("openai-beta.realtime-v1") ?? false
    }

    /// GA → beta: the output event names that differ (client events accept both).
    static let betaEventNames = [
        "response.output_audio.delta": "response.audio.delta", "response.output_audio.done": "response.audio.done",
        "response.output_audio_transcript.delta": "response.audio_transcript.delta",
        "response.output_audio_transcript.done": "response.audio_transcript.done",
        "response.output_text.delta": "response.text.delta", "response.output_text.done": "response.text.done",
        "conversation.item.added": "conversation.item.created",
    ]

    /// The beta names of an event's content part types ("output_audio" → "audio"), in items and responses.
    static func betaParts(_ v: Any) -> Any {
        if var d = v as? [String: Any] {
            if let t = d["type"] as? String, t == "output_audio" || t == "output_text" {
                d["type"] = t == "output_audio" ? "audio" : "text"
            }
            for (k, x) in d where x is [String: Any] || x is [Any] { d[k] = betaParts(x) }
            return d
        }
        if let a = v as? [Any] { return a.map(betaParts) }
        return v
    }

    init(state: ServerState, outbound: WebSocketOutboundWriter, betaNames: Bool = false) {
        self.state = state
        self.betaNames = betaNames
        out = outbound
        let (messages, queue) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
        outbox = queue
        outboxDrained = Task { for await m in messages { try? await outbound.writeTextMessage(m) } }
        model = state.model
        conversation = Conversation(model: state.model, system: TaskPreset.chat.system)
        vad = VoiceActivityDetector(rate: 24000)
    }

    func send(_ o: [String: Any]) async {
        guard !closed else { return }
        var o = o
        if betaNames {
            if let t = o["type"] as? String, let b = Self.betaEventNames[t] { o["type"] = b }
            for k in ["item", "response", "part"] { if let v = o[k] { o[k] = Self.betaParts(v) } }
        }
        o["event_id"] = newId("event_")
        outbox.yield(jsonString(o))
    }

    func error(_ message: String, code: String, param: String? = nil, eventId: String? = nil) async {
        await send([
            "type": "error",
            "error": [
                "type": "invalid_request_error", "code": code, "message": message, "param": orNull(param),
                "event_id": orNull(eventId),
            ],
        ])
    }

    /// Prefills the system prompt now (the prefix cache): only the user's audio is on the critical path.
    func warm(_ c: Conversation) {
        let t = Thread { try? c.prefill() }
        t.stackSize = 8 << 20
        t.start()
    }

    func start() async {
        warm(conversation)
        await send(["type": "session.created", "session": sessionObject()])
    }

    func sessionObject() -> [String: Any] {
        let td: Any =
            vadEnabled
            ? [
                "type": "server_vad", "threshold": threshold, "prefix_padding_ms": prefixMs,
                "silence_duration_ms": silenceMs, "create_response": createResponse,
                "interrupt_response": interruptResponse,
            ] as [String: Any] : NSNull()
        return [
            "id": id, "object": "realtime.session", "type": "realtime", "model": state.modelId,
            "output_modalities": ["audio"], "instructions": instructions ?? TaskPreset.chat.system,
            "audio": [
                "input": ["format": ["type": "audio/pcm", "rate": inputRate], "turn_detection": td],
                "output": ["format": ["type": "audio/pcm", "rate": SpeechDecoder.sampleRate], "voice": voice],
            ],
            "max_output_tokens": maxOutputTokens, "greedy": greedy,
        ]
    }

    func handle(_ text: String) async {
        guard let data = text.data(using: .utf8), let any = try? JSONSerialization.jsonObject(with: data),
            let o = any as? [String: Any]
        else {
            await error("the message is not a JSON object", code: "invalid_json")
            return
        }
        let eventId = o["event_id"] as? String
        guard let type = o["type"] as? String else {
            await error("the event has no 'type'", code: "missing_type", param: "type", eventId: eventId)
            return
        }
        do {
            switch type {
            case "session.update": try await update(Fields(o))
            case "input_audio_buffer.append":
                guard let a = o["audio"] as? String, let d = Data(base64Encoded: a) else {
                    throw APIError.bad("'audio' must be base64 PCM16", param: "audio")
                }
                guard d.count % 2 == 0 else {
                    throw APIError.bad("'audio' must hold whole 16-bit samples", param: "audio")
                }
                await append(pcm: [UInt8](d))
            case "input_audio_buffer.commit": try await commit()
            case "input_audio_buffer.clear":
                buffer = []
                bufferStart = vad.frameCount
                await send(["type": "input_audio_buffer.cleared"])
            case "conversation.item.create": try await createItem(Fields(o))
            case "conversation.item.truncate": try await truncate(Fields(o))
            case "response.create": try await startResponse()
            case "response.cancel":
                guard response != nil else {
                    throw APIError.bad("there is no response to cancel", code: "response_cancel_not_active")
                }
                cancelResponse()
            default:
                throw APIError.bad("unknown event type '\(type)'", param: "type", code: "unknown_event")
            }
        } catch let e as APIError {
            await error(e.message, code: e.code ?? "invalid_value", param: e.param, eventId: eventId)
        } catch {
            await self.error("\(error)", code: "invalid_value", eventId: eventId)
        }
    }

    func update(_ f: Fields) async throws {
        guard let s = try f.object("session") else { throw APIError.bad("'session' is required", param: "session") }
        var rate = inputRate
        var td: Any?? = nil
        var v = voice
        if let audio = try s.object("audio") {
            if let input = try audio.object("input") {
                if let fmt = try input.object("format") {
                    if let t = try fmt.string("type"), t != "audio/pcm" {
                        throw APIError.bad(
                            "only audio/pcm input is supported", param: "session.audio.input.format.type")
                    }
                    rate = try fmt.int("rate", in: 8000...48000) ?? rate
                }
                if input.o.keys.contains("turn_detection") { td = .some(input.o["turn_detection"]) }
                if input.o.keys.contains("transcription") { transcribe = !(input.o["transcription"] is NSNull) }
            }
            if let output = try audio.object("output"), let vv = try output.string("voice") { v = vv }
        }
        // beta shape
        if let fmt = try? s.string("input_audio_format"), fmt != "pcm16" {
            throw APIError.bad("only pcm16 input is supported", param: "session.input_audio_format")
        }
        if s.o.keys.contains("turn_detection") { td = .some(s.o["turn_detection"]) }
        if s.o.keys.contains("input_audio_transcription") {
            transcribe = !(s.o["input_audio_transcription"] is NSNull)
        }
        if let vv = try s.string("voice") { v = vv }
        if let r = try s.int("input_audio_rate", in: 8000...48000) { rate = r }
        guard [16000, 24000, 48000].contains(rate) else {
            throw APIError.bad("input rate must be 24000 (or 16000, 48000)", param: "session.audio.input.format.rate")
        }
        _ = try Voices.parse(v, param: "session.audio.output.voice")
        if case .some(let t) = td {
            if t == nil || t is NSNull {
                vadEnabled = false
            } else {
                guard let tdo = t as? [String: Any] else {
                    throw APIError.bad("'turn_detection' must be an object or null", param: "session.turn_detection")
                }
                let tf = Fields(tdo, prefix: "session.turn_detection.")
                let ty = try tf.string("type") ?? "server_vad"
                guard ty == "server_vad" else {
                    throw APIError.bad("turn_detection.type must be server_vad", param: "session.turn_detection.type")
                }
                vadEnabled = true
                threshold = try tf.number("threshold", in: 0...1) ?? threshold
                prefixMs = try tf.int("prefix_padding_ms", in: 0...5000) ?? prefixMs
                silenceMs = try tf.int("silence_duration_ms", in: 20...10000) ?? silenceMs
                createResponse = try tf.bool("create_response") ?? createResponse
                interruptResponse = try tf.bool("interrupt_response") ?? interruptResponse
            }
        }
        if let ins = try s.string("instructions"), ins != (instructions ?? TaskPreset.chat.system) {
            instructions = ins
            if turns == 0 && pending.isEmpty {
                conversation = Conversation(model: model, system: ins)
                warm(conversation)
            }
        }
        greedy = try s.bool("greedy") ?? greedy
        if s.o["max_output_tokens"] as? String == "inf" {
            maxOutputTokens = 4096
        } else if let m = try s.int("max_output_tokens", in: 1...100_000) {
            maxOutputTokens = m
        }
        voice = v
        inputRate = rate
        buffer = []
        vad = VoiceActivityDetector(rate: inputRate, threshold: threshold, silenceMs: silenceMs)
        bufferStart = 0
        await send(["type": "session.updated", "session": sessionObject()])
    }

    func ms(_ samples: Int) -> Int { samples * 1000 / inputRate }

    func append(pcm: [UInt8]) async {
        let x = AudioCodec.floats(pcm16: pcm)
        buffer += x
        let maxSamples = inputRate * 600
        if buffer.count > maxSamples {
            buffer.removeFirst(buffer.count - maxSamples)
            bufferStart = vad.frameCount - buffer.count
        }
        guard vadEnabled else { return }
        for e in vad.push(x) {
            switch e {
            case .started(let at):
                let item = newId("item_")
                speechItem = item
                if response != nil && interruptResponse { cancelResponse() }
                await send([
                    "type": "input_audio_buffer.speech_started", "audio_start_ms": at, "item_id": item,
                ])
                // keep the prefix padding before the start
                let keepFrom = max(0, at * inputRate / 1000 - prefixMs * inputRate / 1000)
                let drop = keepFrom - bufferStart
                if drop > 0 && drop < buffer.count {
                    buffer.removeFirst(drop)
                    bufferStart += drop
                }
            case .stopped(let at):
                speechStoppedAt = Date()
                await send([
                    "type": "input_audio_buffer.speech_stopped", "audio_end_ms": at, "item_id": orNull(speechItem),
                ])
                let end = at * inputRate / 1000 - bufferStart
                if end > 0 && end < buffer.count { buffer.removeLast(buffer.count - end) }
                try? await commit(item: speechItem)
                speechItem = nil
                if createResponse { try? await startResponse() }
            }
        }
        if !vad.inSpeech {
            // idle: keep only what a prefix may need
            let keep = (prefixMs + 200) * inputRate / 1000
            if buffer.count > keep {
                let drop = buffer.count - keep
                buffer.removeFirst(drop)
                bufferStart += drop
            }
        }
    }

    func commit(item: String? = nil) async throws {
        guard buffer.count >= inputRate / 10 else {
            throw APIError.bad(
                "the input audio buffer holds under 100 ms of audio", code: "input_audio_buffer_commit_empty")
        }
        let id = item ?? newId("item_")
        let clip = AudioClip(samples: buffer, sampleRate: inputRate)
        pending.append(.audio(clip))
        if transcribe { toTranscribe.append((id, clip)) }
        bufferStart += buffer.count
        buffer = []
        await send(["type": "input_audio_buffer.committed", "previous_item_id": orNull(lastItemId), "item_id": id])
        await send([
            "type": "conversation.item.created", "previous_item_id": orNull(lastItemId),
            "item": [
                "id": id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
                "content": [["type": "input_audio", "transcript": NSNull()]],
            ],
        ])
        lastItemId = id
        if !vadEnabled { speechStoppedAt = Date() }
    }

    func createItem(_ f: Fields) async throws {
        guard let item = try f.object("item") else { throw APIError.bad("'item' is required", param: "item") }
        guard try item.string("role") ?? "user" == "user" else {
            throw APIError.bad("only user items can be created", param: "item.role")
        }
        guard let parts = try item.array("content") else {
            throw APIError.bad("'item.content' is required", param: "item.content")
        }
        var content: [UserContent] = []
        for (i, p) in parts.enumerated() {
            guard let o = p as? [String: Any] else {
                throw APIError.bad("bad content part", param: "item.content[\(i)]")
            }
            switch o["type"] as? String {
            case "input_text", "text":
                guard let t = o["text"] as? String else {
                    throw APIError.bad("'text' is required", param: "item.content[\(i)].text")
                }
                content.append(.text(t))
            case "input_audio":
                guard let a = o["audio"] as? String, let d = Data(base64Encoded: a) else {
                    throw APIError.bad("'audio' must be base64 PCM16", param: "item.content[\(i)].audio")
                }
                content.append(.audio(AudioClip(samples: AudioCodec.floats(pcm16: [UInt8](d)), sampleRate: inputRate)))
            default:
                throw APIError.bad("content type must be input_text or input_audio", param: "item.content[\(i)].type")
            }
        }
        guard !content.isEmpty else { throw APIError.bad("'item.content' is empty", param: "item.content") }
        let id = (try item.string("id")) ?? newId("item_")
        pending += content
        await send([
            "type": "conversation.item.created", "previous_item_id": orNull(lastItemId),
            "item": ["id": id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user"],
        ])
        lastItemId = id
    }

    /// Audio sent per assistant item of this session, in ms (the latest 64): a truncate may name an item whose
    /// response has already ended and been followed by another.
    var assistantAudioMs: [String: Int] = [:]
    var assistantOrder: [String] = []

    func sentAudio(_ item: String, ms: Int) {
        if assistantAudioMs.updateValue(ms, forKey: item) == nil {
            assistantOrder.append(item)
            if assistantOrder.count > 64 { assistantAudioMs[assistantOrder.removeFirst()] = nil }
        }
    }

    func truncate(_ f: Fields) async throws {
        guard let item = try f.string("item_id") else { throw APIError.bad("'item_id' is required", param: "item_id") }
        guard let sentMs = assistantAudioMs[item] else {
            throw APIError.bad(
                "'item_id' is not an assistant item of this session", param: "item_id", code: "item_not_found")
        }
        let end = try f.int("audio_end_ms", in: 0...10_000_000) ?? 0
        guard end <= sentMs + 80 else {
            throw APIError.bad("'audio_end_ms' is past the audio sent (\(sentMs) ms)", param: "audio_end_ms")
        }
        let index = try f.int("content_index", in: 0...10) ?? 0
        // the history keeps the frames played: now, or when the running response has ended
        // (only the latest answer can be cut: an older item's truncate is acknowledged and changes nothing)
        let frames = (end + Self.frameMs - 1) / Self.frameMs
        if item == assistantOrder.last {
            if response != nil { truncateTo = frames } else { await cutAnswer(frames) }
        }
        await send([
            "type": "conversation.item.truncated", "item_id": item, "content_index": index, "audio_end_ms": end,
        ])
    }

    static let frameMs = 80
    /// Frames the client played of the running response (`conversation.item.truncate` during it).
    var truncateTo: Int?

    /// Cuts the last answer back to `frames` frames (caches rewound and the kept part computed again) on a thread
    /// of its own; the next turn waits for it through the conversation.
    func cutAnswer(_ frames: Int) async {
        let conv = conversation
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let t = Thread {
                _ = try? conv.truncateAnswer(keepingFrames: frames)
                done.resume()
            }
            t.stackSize = 8 << 20
            t.start()
        }
    }

    func startResponse() async throws {
        guard response == nil else {
            throw APIError.bad("a response is in progress", code: "conversation_already_has_active_response")
        }
        guard !pending.isEmpty else {
            throw APIError.bad("nothing to answer: commit audio or create an item first", code: "no_input")
        }
        let content = pending
        pending = []
        let rid = newId("resp_"), item = newId("item_")
        let conv = conversation
        let sampling = TaskPreset.chat.audioSampling(seed: 1, greedy: greedy)
        let stream = conv.reply(
            to: content, mode: .interleaved, maxTokens: maxOutputTokens, sampling: .greedy, audioSampling: sampling,
            audio: .speech(decoder: nil))
        let events = TurnEvents(stream, conversation: conv, registry: state.conversations)
        turns += 1
        response = Running(id: rid, itemId: item)
        let since = speechStoppedAt ?? Date()
        speechStoppedAt = nil
        let task = Task { await self.run(events, rid: rid, item: item, since: since) }
        response?.task = task
    }

    func cancelResponse() {
        guard response != nil else { return }
        response?.cancelled = true
        conversation.cancel()
    }

    func run(_ events: TurnEvents, rid: String, item: String, since: Date) async {
        await send([
            "type": "response.created",
            "response": ["id": rid, "object": "realtime.response", "status": "in_progress", "output": []],
        ])
        await send([
            "type": "conversation.item.created", "previous_item_id": orNull(lastItemId),
            "item": [
                "id": item, "object": "realtime.item", "type": "message", "status": "in_progress", "role": "assistant",
                "content": [["type": "output_audio", "transcript": ""]],
            ],
        ])
        lastItemId = item
        sentAudio(item, ms: 0)
        var transcript = ""
        var stats: GenerationStats?
        var failure: String?
        var firstAudio: Double?
        var chunker = FrameChunker()
        func common() -> [String: Any] { ["response_id": rid, "item_id": item, "output_index": 0, "content_index": 0] }
        do {
            while let e = try await events.next() {
                let cancelled = response?.cancelled ?? true
                switch e {
                case .text(let id, let piece):
                    let t = visibleText(id, piece, model)
                    guard !t.isEmpty, !cancelled else { continue }
                    transcript += t
                    var o = common()
                    o["type"] = "response.output_audio_transcript.delta"
                    o["delta"] = t
                    await send(o)
                case .samples(let s):
                    guard !cancelled, let frame = chunker.push(s) else { continue }
                    if firstAudio == nil { firstAudio = Date().timeIntervalSince(since) }
                    var o = common()
                    o["type"] = "response.output_audio.delta"
                    o["delta"] = Data(AudioCodec.pcm16(frame)).base64EncodedString()
                    await send(o)
                    response?.sentSamples += frame.count
                    sentAudio(item, ms: (response?.sentSamples ?? 0) * 1000 / SpeechDecoder.sampleRate)
                case .done(let st): stats = st
                case .audio: break
                }
            }
        } catch {
            failure = "\(error)"
        }
        events.finish()
        let cancelled = response?.cancelled ?? true
        if !cancelled, let rest = chunker.flush() {
            var o = common()
            o["type"] = "response.output_audio.delta"
            o["delta"] = Data(AudioCodec.pcm16(rest)).base64EncodedString()
            await send(o)
            response?.sentSamples += rest.count
        }
        let sent = response?.sentSamples ?? 0
        sentAudio(item, ms: sent * 1000 / SpeechDecoder.sampleRate)
        // an interrupted answer keeps what was sent (or what `truncate` said was played)
        if cancelled || truncateTo != nil {
            let frameSamples = SpeechDecoder.sampleRate * Self.frameMs / 1000
            await cutAnswer(truncateTo ?? (sent + frameSamples - 1) / frameSamples)
            truncateTo = nil
        }
        var o = common()
        o["type"] = "response.output_audio.done"
        await send(o)
        o["type"] = "response.output_audio_transcript.done"
        o["transcript"] = transcript
        await send(o)
        let status =
            failure != nil
            ? "failed" : cancelled ? "cancelled" : stats?.stopReason == .maxTokens ? "incomplete" : "completed"
        let inTok = stats?.promptTokens ?? 0, outTok = stats?.generatedTokens ?? 0
        if let st = stats, st.speechSamples > 0, let fa = firstAudio {
            state.metrics.spoke(timeToFirstAudio: fa, realTimeFactor: 0)
        }
        var details: Any = NSNull()
        if cancelled { details = ["type": "cancelled", "reason": "turn_detected"] }
        if let failure { details = ["type": "failed", "error": ["message": failure]] }
        await send([
            "type": "response.done",
            "response": [
                "id": rid, "object": "realtime.response", "status": status, "status_details": details,
                "output": [
                    [
                        "id": item, "object": "realtime.item", "type": "message", "role": "assistant",
                        "status": status == "completed" ? "completed" : "incomplete",
                        "content": [["type": "output_audio", "transcript": transcript]],
                    ]
                ],
                "usage": ["input_tokens": inTok, "output_tokens": outTok, "total_tokens": inTok + outTok],
                "time_to_first_audio": orNull(firstAudio),
                "audio_ms": sent * 1000 / SpeechDecoder.sampleRate,
            ],
        ])
        response = nil
        if !pending.isEmpty && vadEnabled && createResponse { try? await startResponse() }
        transcribeHeard()
    }

    /// Transcribes the user's committed audio on a thread of its own and sends
    /// `conversation.item.input_audio_transcription.completed` for each item.
    func transcribeHeard() {
        guard !toTranscribe.isEmpty, let tr = try? Transcriber(model: model) else { return }
        let jobs = toTranscribe
        toTranscribe = []
        let t = Thread { [weak self] in
            for (id, clip) in jobs {
                var text = ""
                var o = TranscriptionOptions()
                o.maxTokens = 128
                _ = try? tr.transcribe(clip, options: o) { e in if case .text(_, let p) = e { text += p } }
                let done = text.trimmingCharacters(in: .whitespaces)
                Task { await self?.sendTranscript(id: id, text: done) }
            }
        }
        t.stackSize = 8 << 20
        t.start()
    }

    func sendTranscript(id: String, text: String) async {
        await send([
            "type": "conversation.item.input_audio_transcription.completed", "item_id": id, "content_index": 0,
            "transcript": text,
        ])
    }

    func shutdown() async {
        cancelResponse()
        try? await out.close(.goingAway, reason: "server shutting down")
    }

    func close() async {
        cancelResponse()
        let t = response?.task
        await t?.value
        closed = true
        outbox.finish()
        await outboxDrained.value
    }
}

extension VoiceActivityDetector {
    /// Samples seen so far (complete frames and the carry).
    var frameCount: Int { frames * frame + carry.count }
}

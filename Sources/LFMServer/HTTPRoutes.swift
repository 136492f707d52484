import AudioFiles
import Foundation
import Hummingbird
import MiniRuntime
import MultipartKit
import NIOCore

/// The HTTP routes: health, models, metrics, the page, speech, transcriptions and chat completions.
struct HTTPRoutes: Sendable {
    let state: ServerState
    var model: LFMModel { state.model }

    func register(_ router: Router<ServerContext>) {
        router.get("/health") { _, _ in jsonResponse(["status": "ok"]) }
        router.get("/v1/models") { _, _ in
            jsonResponse([
                "object": "list",
                "data": [["id": state.modelId, "object": "model", "created": state.created, "owned_by": "local"]],
            ])
        }
        router.get("/metrics") { _, _ in
            textResponse(state.metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/") { _, _ in textResponse(LivePage.html, contentType: "text/html; charset=utf-8") }
        router.post("/v1/audio/speech") { req, ctx in try await speech(req, ctx) }
        router.post("/v1/audio/transcriptions") { req, ctx in try await transcriptions(req, ctx) }
        router.post("/v1/chat/completions") { req, ctx in try await chat(req, ctx) }
    }

    func body(_ req: Request) async throws -> ByteBuffer {
        try await req.body.collect(upTo: state.config.maxUploadBytes)
    }

    func checkOpen() throws {
        if state.shuttingDown.load(ordering: .relaxed) {
            throw APIError(.serviceUnavailable, "the server is shutting down", code: "shutting_down")
        }
    }

    // MARK: speech

    func speech(_ req: Request, _ ctx: ServerContext) async throws -> Response {
        try checkOpen()
        let f = try Fields.parse(Data(buffer: try await body(req)))
        guard let input = try f.string("input"), !input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw APIError.bad("'input' is required: the text to speak", param: "input", code: "missing_field")
        }
        guard input.count <= 4096 else { throw APIError.bad("'input' is over 4096 characters", param: "input") }
        let voice = try Voices.parse(try f.string("voice"), param: "voice")
        let format = try f.string("response_format") ?? "wav"
        let codec: AudioCodec.OutputFormat?
        switch format {
        case "wav", "pcm": codec = nil
        default:
            guard let c = AudioCodec.OutputFormat(rawValue: format), c != .ogg else {
                throw APIError.bad(
                    "'response_format' must be wav, pcm, flac, opus or mp3", param: "response_format")
            }
            codec = c
        }
        let streamFormat = try f.string("stream_format") ?? "audio"
        guard streamFormat == "audio" || streamFormat == "sse" else {
            throw APIError.bad("'stream_format' must be audio or sse", param: "stream_format")
        }
        if let s = try f.number("speed", in: 0.25...4.0), s != 1 {
            throw APIError.bad("'speed' other than 1 is not supported", param: "speed")
        }
        let greedy = try f.bool("greedy") ?? false
        let seed = UInt64(try f.int("seed", in: 0...Int(Int32.max)) ?? 0)
        let temp = try f.number("audio_temperature", in: 0...100).map { Float($0) }
        let topK = try f.int("audio_top_k", in: 1...100_000)
        let maxTokens = try f.int("max_tokens", in: 1...100_000) ?? 512
        let decoder = try decoderParam(f)
        guard model.audioHead != nil else {
            throw APIError.bad("this bundle has no audio head: it cannot speak", param: "input", code: "unsupported")
        }
        try state.conversations.acquireTransient()
        let task = TaskPreset.tts(voice)
        let conv = Conversation(model: model, task: task)
        let stream = conv.reply(
            to: [.text(input)], mode: task.mode, maxTokens: maxTokens, sampling: .greedy,
            audioSampling: task.audioSampling(temperature: temp, topK: topK, seed: seed &+ 1, greedy: greedy),
            audio: .speech(decoder: decoder))
        let events = TurnEvents(stream, conversation: conv, registry: state.conversations)
        do { try await events.start() } catch {
            state.conversations.releaseTransient()
            throw error
        }
        let rate = SpeechDecoder.sampleRate
        let t0 = Date()
        let metrics = state.metrics, registry = state.conversations
        @Sendable func spoke(_ stats: GenerationStats?) {
            guard let stats else { return }
            let wall = Date().timeIntervalSince(t0)
            metrics.spoke(
                timeToFirstAudio: stats.timeToFirstAudio,
                realTimeFactor: wall > 0 ? Double(stats.speechSamples) / Double(rate) / wall : 0)
        }
        if streamFormat == "sse" {
            return sse { send in
                defer { events.finish(); registry.releaseTransient() }
                var stats: GenerationStats?
                while let e = try await events.next() {
                    switch e {
                    case .samples(let s):
                        try await send([
                            "type": "speech.audio.delta", "audio": Data(AudioCodec.pcm16(s)).base64EncodedString(),
                        ])
                    case .done(let st): stats = st
                    default: break
                    }
                }
                spoke(stats)
                let inTok = stats?.promptTokens ?? 0, outTok = stats?.generatedTokens ?? 0
                try await send([
                    "type": "speech.audio.done",
                    "usage": ["input_tokens": inTok, "output_tokens": outTok, "total_tokens": inTok + outTok],
                    "time_to_first_audio": stats?.timeToFirstAudio ?? 0,
                ])
            }
        }
        if let codec {  // encoded as the frames come: each chunk the encoder finishes is sent
            let encoder = try AudioCodec.Stream(sampleRate: rate, format: codec)
            return Response(
                status: .ok, headers: [.contentType: codec.contentType],
                body: ResponseBody { writer in
                    defer { events.finish(); registry.releaseTransient() }
                    var stats: GenerationStats?
                    while let e = try await events.next() {
                        if case .samples(let s) = e {
                            let b = encoder.append(s)
                            if !b.isEmpty { try await writer.write(ByteBuffer(bytes: b)) }
                        }
                        if case .done(let st) = e { stats = st }
                    }
                    spoke(stats)
                    let tail = encoder.finish()
                    if !tail.isEmpty { try await writer.write(ByteBuffer(bytes: tail)) }
                    try await writer.finish(nil)
                })
        }
        let wav = format == "wav"
        return Response(
            status: .ok, headers: [.contentType: wav ? "audio/wav" : "audio/pcm"],
            body: ResponseBody { writer in
                defer { events.finish(); registry.releaseTransient() }
                if wav {
                    try await writer.write(ByteBuffer(bytes: AudioCodec.wavHeader(sampleRate: rate, dataBytes: nil)))
                }
                var stats: GenerationStats?
                while let e = try await events.next() {
                    if case .samples(let s) = e { try await writer.write(ByteBuffer(bytes: AudioCodec.pcm16(s))) }
                    if case .done(let st) = e { stats = st }
                }
                spoke(stats)
                try await writer.finish(nil)
            })
    }

    func decoderParam(_ f: Fields) throws -> DecoderKind? {
        guard let d = try f.string("decoder") else { return nil }
        guard let k = DecoderKind(rawValue: d) else {
            throw APIError.bad("'decoder' must be mimi or detokenizer", param: "decoder")
        }
        if k == .detokenizer && model.detokenizer == nil {
            throw APIError.bad("this bundle has no detokenizer", param: "decoder", code: "unsupported")
        }
        if k == .mimi && model.mimi == nil {
            throw APIError.bad("this bundle has no Mimi decoder", param: "decoder", code: "unsupported")
        }
        return k
    }

    /// A `text/event-stream` response; `send` writes one `data:` event.
    func sse(
        _ body: @escaping @Sendable (_ send: (Any) async throws -> Void) async throws -> Void, done: Bool = false
    ) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var w = writer
                do {
                    try await body { o in
                        try await w.write(ByteBuffer(string: "data: " + jsonString(o) + "\n\n"))
                    }
                } catch {
                    // a client that went away: nothing to tell; anything else ends the stream with an error event
                    if !(error is CancellationError) {
                        try? await w.write(
                            ByteBuffer(string: "data: " + jsonString(APIError.from(error).json) + "\n\n"))
                    }
                }
                if done { try? await w.write(ByteBuffer(string: "data: [DONE]\n\n")) }
                try await w.finish(nil)
            })
    }

    // MARK: transcriptions

    struct Upload {
        var fields: [String: String] = [:]
        var file: [UInt8]?
        var fileName = "file"
    }

    func multipart(_ req: Request, _ buf: ByteBuffer) throws -> Upload {
        guard let ct = req.headers[.contentType], ct.lowercased().hasPrefix("multipart/form-data") else {
            throw APIError.bad("the body must be multipart/form-data with a 'file' part", param: "file")
        }
        guard
            let b = ct.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
                .first(where: { $0.lowercased().hasPrefix("boundary=") })?.dropFirst(9), !b.isEmpty
        else { throw APIError.bad("multipart/form-data without a boundary", param: "file") }
        let boundary =
            b.hasPrefix("\"") && b.hasSuffix("\"") && b.count >= 2 ? String(b.dropFirst().dropLast()) : String(b)
        let parser = MultipartParser(boundary: boundary)
        var up = Upload()
        var name: String?, filename: String?
        var data: [UInt8] = []
        var parts = 0
        parser.onHeader = { k, v in
            if k.lowercased() == "content-disposition" {
                for p in v.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                    if p.hasPrefix("name=") { name = String(p.dropFirst(5)).trimmingCharacters(in: ["\""]) }
                    if p.hasPrefix("filename=") { filename = String(p.dropFirst(9)).trimmingCharacters(in: ["\""]) }
                }
            }
        }
        parser.onBody = { buf in data += buf.readBytes(length: buf.readableBytes) ?? [] }
        parser.onPartComplete = {
            parts += 1
            if let n = name {
                if n == "file" {
                    up.file = data
                    up.fileName = filename ?? "file"
                } else if n.count < 100, data.count < 1 << 16 {
                    up.fields[n] = String(decoding: data, as: UTF8.self)
                }
            }
            name = nil; filename = nil; data = []
        }
        do { try parser.execute(buf) } catch {
            throw APIError.bad("malformed multipart body: \(error)", param: "file", code: "invalid_multipart")
        }
        guard up.file != nil else {
            throw APIError.bad(
                parts == 0 ? "truncated or empty multipart body: no complete part" : "'file' is required",
                param: "file", code: "missing_field")
        }
        return up
    }

    func transcriptions(_ req: Request, _ ctx: ServerContext) async throws -> Response {
        try checkOpen()
        let up = try multipart(req, try await body(req))
        let f = up.fields
        let format = f["response_format"] ?? "json"
        guard ["json", "text", "verbose_json", "srt", "vtt"].contains(format) else {
            throw APIError.bad(
                "'response_format' must be json, text, verbose_json, srt or vtt", param: "response_format")
        }
        func num(_ k: String, _ r: ClosedRange<Double>) throws -> Double? {
            guard let s = f[k] else { return nil }
            guard let d = Double(s.trimmingCharacters(in: .whitespaces)), r.contains(d) else {
                throw APIError.bad("'\(k)' must be a number between \(r.lowerBound) and \(r.upperBound)", param: k)
            }
            return d
        }
        let stream: Bool
        switch f["stream"]?.lowercased() {
        case nil, "false", "0": stream = false
        case "true", "1": stream = true
        default: throw APIError.bad("'stream' must be true or false", param: "stream")
        }
        let temperature = try num("temperature", 0...2) ?? 0
        let maxTokens = Int(try num("max_tokens", 1...100_000) ?? 512)
        let window = try num("window", 1...600) ?? 30
        guard model.audioEncoder != nil else {
            throw APIError.bad(
                "this bundle has no audio encoder: it cannot transcribe", param: "file", code: "unsupported")
        }
        let clip: AudioClip
        do { clip = try AudioCodec.decode(up.file!, name: up.fileName) } catch let e as RuntimeError {
            throw APIError.bad(e.description, param: "file", code: "invalid_audio")
        }
        var opts = TranscriptionOptions()
        opts.maxWindowSeconds = window
        opts.maxTokens = maxTokens
        if temperature > 0 { opts.sampling = SamplingParams(temperature: Float(temperature)) }
        try state.conversations.acquireTransient()
        let transcriber = try Transcriber(model: model)
        let events = transcribe(transcriber, clip, opts)
        let registry = state.conversations
        if stream {
            return sse { send in
                defer { transcriber.cancel(); registry.releaseTransient() }
                var text = ""
                for try await e in events {
                    if case .text(let piece) = e, !piece.isEmpty {
                        text += piece
                        try await send(["type": "transcript.text.delta", "delta": piece])
                    }
                }
                try await send(["type": "transcript.text.done", "text": text])
            }
        }
        defer { registry.releaseTransient() }
        var segments: [(start: Double, end: Double, text: String, tokens: [Int])] = []
        do {
            for try await e in events {
                switch e {
                case .segment(let s, let end): segments.append((s, end, "", []))
                case .text(let piece): if !segments.isEmpty { segments[segments.count - 1].text += piece }
                case .token(let id): if !segments.isEmpty { segments[segments.count - 1].tokens.append(id) }
                }
            }
        } catch {
            transcriber.cancel()
            throw error
        }
        let full = segments.map { $0.text.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        switch format {
        case "text": return textResponse(full + "\n")
        case "srt", "vtt":
            func ts(_ t: Double, _ sep: String) -> String {
                let ms = Int((t * 1000).rounded())
                return String(
                    format: "%02d:%02d:%02d\(sep)%03d", ms / 3_600_000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000)
            }
            var out = format == "vtt" ? "WEBVTT\n\n" : ""
            for (i, s) in segments.enumerated() {
                let sep = format == "vtt" ? "." : ","
                if format == "srt" { out += "\(i + 1)\n" }
                out += "\(ts(s.start, sep)) --> \(ts(s.end, sep))\n\(s.text.trimmingCharacters(in: .whitespaces))\n\n"
            }
            return textResponse(
                out, contentType: format == "vtt" ? "text/vtt; charset=utf-8" : "text/plain; charset=utf-8")
        case "verbose_json":
            return jsonResponse([
                "task": "transcribe", "language": "english", "duration": clip.seconds, "text": full,
                "segments": segments.enumerated().map { i, s in
                    [
                        "id": i, "start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens,
                        "temperature": temperature,
                    ] as [String: Any]
                },
            ])
        default:
            return jsonResponse(["text": full, "usage": ["type": "duration", "seconds": clip.seconds]])
        }
    }

    enum TranscriptPiece: Sendable {
        case segment(Double, Double)
        case token(Int)
        case text(String)
    }

    /// Runs the transcriber on a thread of its own; ending the stream early cancels it.
    func transcribe(
        _ t: Transcriber, _ clip: AudioClip, _ opts: TranscriptionOptions
    )
        -> AsyncThrowingStream<TranscriptPiece, Error>
    {
        AsyncThrowingStream { cont in
            let th = Thread {
                do {
                    _ = try t.transcribe(clip, options: opts) { e in
                        switch e {
                        case .segment(_, let s, let end): cont.yield(.segment(s, end))
                        case .text(let id, let piece):
                            cont.yield(.token(id))
                            cont.yield(.text(piece))
                        case .segmentDone: break
                        }
                    }
                    cont.finish()
                } catch { cont.finish(throwing: error) }
            }
            th.stackSize = 8 << 20
            cont.onTermination = { reason in if case .cancelled = reason { t.cancel() } }
            th.start()
        }
    }
}

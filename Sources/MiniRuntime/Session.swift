import Foundation

/// Events streamed by a session.
public enum GenerationEvent: Sendable {
    /// One generated text token and its text (may be empty while a UTF-8 character is incomplete).
    case text(id: Int, piece: String)
    /// One generated audio frame: `codebooks` Mimi codes (all 2048 for the end-of-audio frame).
    case audio(codes: [Int])
    case done(GenerationStats)
}

public struct GenerationStats: Sendable, Codable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var audioFrames = 0
    public var prefillSeconds = 0.0
    public var timeToFirstToken = 0.0
    /// From the start of the turn to the first audio frame (0 when none).
    public var timeToFirstFrame = 0.0
    public var decodeSeconds = 0.0
    /// Time spent sampling frames in the audio head (depthformer), included in decodeSeconds.
    public var audioHeadSeconds = 0.0
    /// Audio-head (depthformer) time of the first frame.
    public var firstFrameHeadSeconds = 0.0
    /// Text steps before the first audio frame.
    public var textStepsBeforeAudio = 0
    /// Audio input of this turn: positions it took and the time spent resampling, in the mel front end and the
    /// encoder (conformer + adapter).
    public var audioPositions = 0
    public var audioSeconds = 0.0
    public var melSeconds = 0.0
    public var encoderSeconds = 0.0
    /// Why generation ended: "im_end", "max_tokens", "audio_start" (text-only sessions), "context", "cancelled".
    public var stopReason = ""
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / decodeSeconds : 0
    }
}

/// What a user turn holds, in order: text and audio clips (any sample rate, mono).
public enum UserContent: Sendable {
    case text(String)
    case audio(AudioClip)
}

/// Modality of each position (the reference's `LFMModality`).
public enum Modality: Int, Sendable { case text = 1, audioIn = 2, audioOut = 3 }

/// How the assistant answers (liquid_audio/model/lfm2_audio.py, `generate_sequential` and `generate_interleaved`).
public enum GenerationMode: String, Sendable {
    /// Text only: an <|audio_start|> ends the turn (what `lfm-run text` and ASR use).
    case text
    /// `generate_sequential`: text, then after <|audio_start|> audio frames until end-of-audio, then text.
    case sequential
    /// `generate_interleaved`: 6 text tokens / 12 frames (the bundle's config) until <|text_end|>, then audio.
    case interleaved
}

/// A multi-turn chat over one model. The KV cache and conv states are kept between turns: history (text, heard
/// audio and spoken frames) is never prefilled twice.
public final class ChatSession: @unchecked Sendable {
    public let model: LFMModel
    public let system: String?
    /// Every position the conversation holds, in order (what the reference would re-prefill): text token ids,
    /// `audioInPlaceholder` at audio input positions and `audioOutPlaceholder` at generated frames; `modalities`
    /// gives each position's modality and `frames` the generated frames in order.
    public private(set) var history: [Int] = []
    public private(set) var modalities: [Modality] = []
    public private(set) var frames: [[Int]] = []
    public static let audioInPlaceholder = -1
    public static let audioOutPlaceholder = -2
    /// Positions not yet run through the backbone.
    enum Pending { case tokens([Int]); case embeddings(AudioEmbeddings); case frame([Int]) }
    var unfed: [Pending] = []
    var unfedCount: Int {
        unfed.reduce(0) { n, p in
            switch p {
            case .tokens(let t): return n + t.count;
            case .embeddings(let e): return n + e.count;
            case .frame: return n + 1
            }
        }
    }
    /// Called with the text logits of every text step (parity tools).
    public var logitsObserver: (([Float]) -> Void)?
    private let lock = NSLock()
    private var cancelFlag = false
    private var turns = 0

    public init(model: LFMModel, system: String? = nil) {
        self.model = model
        self.system = system
        model.backbone.reset()
        let t = model.tokenizer
        appendTokens(ChatFormat.tokenize(ChatFormat.opening(system: system), t))
    }

    func appendTokens(_ ids: [Int]) {
        history += ids; modalities += Array(repeating: .text, count: ids.count)
        if case .tokens(let prev)? = unfed.last {
            unfed[unfed.count - 1] = .tokens(prev + ids)
        } else {
            unfed.append(.tokens(ids))
        }
    }
    func appendAudio(_ e: AudioEmbeddings) {
        history += Array(repeating: Self.audioInPlaceholder, count: e.count);
        modalities += Array(repeating: .audioIn, count: e.count)
        unfed.append(.embeddings(e))
    }

    /// The input embeddings of every pending position (text rows, audio rows, frame sums), in order.
    func pendingEmbeddings() -> [Float] {
        let bb = model.backbone, h = bb.hidden
        var emb = [Float](repeating: 0, count: unfedCount * h)
        emb.withUnsafeMutableBufferPointer { e in
            var row = 0
            for p in unfed {
                switch p {
                case .tokens(let ids): for id in ids { bb.embedding(id, into: e.baseAddress! + row * h); row += 1 }
                case .embeddings(let a):
                    a.values.withUnsafeBufferPointer {
                        (e.baseAddress! + row * h).update(from: $0.baseAddress!, count: a.count * h)
                    }
                    row += a.count
                case .frame(let codes):
                    model.audioHead!.frameEmbedding(codes, into: e.baseAddress! + row * h); row += 1
                }
            }
        }
        return emb
    }

    /// Runs every pending position through the backbone; `last` receives the final hidden state.
    func prefill(last: inout [Float]) throws {
        let n = unfedCount
        guard n > 0 else { return }
        let emb = pendingEmbeddings()
        try emb.withUnsafeBufferPointer { e in
            try last.withUnsafeMutableBufferPointer {
                try model.backbone.forward(e.baseAddress!, count: n, last: $0.baseAddress!)
            }
        }
        unfed = []
    }

    /// Appends a user turn as `ChatState` does (the previous turn's end, "<|im_start|>user\n", each piece on its own,
    /// "<|im_end|>\n<|im_start|>assistant\n"); `encoded[i]` holds the embeddings of `content[i]` when it is audio.
    func appendUserTurn(_ content: [UserContent], encoded: [AudioEmbeddings?]) {
        let t = model.tokenizer
        if turns > 0 { appendTokens(ChatFormat.tokenize([ChatFormat.turnEnd], t)) }
        turns += 1
        appendTokens(ChatFormat.tokenize([ChatFormat.turnStart("user")], t))
        for (c, e) in zip(content, encoded) {
            switch c {
            case .text(let s): appendTokens(t.encode(s))
            case .audio: appendAudio(e!)
            }
        }
        appendTokens(ChatFormat.tokenize([ChatFormat.turnEnd, ChatFormat.turnStart("assistant")], t))
    }

    /// Stops a running generation at the next step.
    public func cancel() { lock.lock(); cancelFlag = true; lock.unlock() }
    var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelFlag }

    /// Streams the assistant's answer to `text`.
    public func reply(
        to text: String, maxTokens: Int = 512, sampling: SamplingParams = .greedy
    ) -> AsyncThrowingStream<GenerationEvent, Error> {
        reply(to: [.text(text)], maxTokens: maxTokens, sampling: sampling)
    }

    /// Streams the assistant's answer to a user turn of text and audio, in any mode.
    public func reply(
        to content: [UserContent], mode: GenerationMode = .text, maxTokens: Int = 512,
        sampling: SamplingParams = .greedy,
        audioSampling: SamplingParams = .greedy
    ) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { cont in
            let worker = Thread { [self] in
                do {
                    let stats = try self.generate(
                        user: content, mode: mode, maxTokens: maxTokens, sampling: sampling,
                        audioSampling: audioSampling
                    ) { cont.yield($0) }
                    cont.yield(.done(stats))
                    cont.finish()
                } catch { cont.finish(throwing: error) }
            }
            cont.onTermination = { [weak self] _ in self?.cancel() }
            worker.stackSize = 8 << 20
            worker.start()
        }
    }

    /// Synchronous text generation; `emit` is called for every generated token.
    public func generate(
        user text: String, maxTokens: Int, sampling: SamplingParams, emit: (GenerationEvent) -> Void
    ) throws -> GenerationStats {
        try generate(user: [.text(text)], maxTokens: maxTokens, sampling: sampling, emit: emit)
    }

    /// Synchronous generation for a user turn of text and audio (each piece tokenized or encoded on its own, in
    /// order, as `ChatState.add_text` / `add_audio`); `emit` is called for every generated token and frame.
    public func generate(
        user content: [UserContent], mode: GenerationMode = .text, maxTokens: Int, sampling: SamplingParams,
        audioSampling: SamplingParams = .greedy, emit: (GenerationEvent) -> Void
    ) throws -> GenerationStats {
        lock.lock(); cancelFlag = false; lock.unlock()
        let t = model.tokenizer, bb = model.backbone
        if mode != .text && model.audioHead == nil {
            throw RuntimeError.badInput(
                "\(model.bundle.gguf.path): the bundle has no audio head (depthformer); audio output is not possible")
        }
        var stats = GenerationStats()
        let t0 = Date()
        // encode audio first (errors leave the session unchanged)
        var encoded: [AudioEmbeddings?] = []
        for c in content {
            if case .audio(let clip) = c {
                guard let enc = model.audioEncoder else {
                    throw RuntimeError.badInput(
                        "\(model.bundle.gguf.path): the bundle has no audio encoder (conformer); audio input is not possible"
                    )
                }
                let e = try enc.embed(clip)
                stats.audioPositions += e.count; stats.audioSeconds += e.stats.audioSeconds
                stats.melSeconds += e.stats.resampleSeconds + e.stats.melSeconds
                stats.encoderSeconds += e.stats.encoderSeconds + e.stats.adapterSeconds
                encoded.append(e)
            } else {
                encoded.append(nil)
            }
        }
        if bb.position + unfedCount + stats.audioPositions > bb.contextLimit {
            throw RuntimeError.contextOverflow(
                limit: bb.contextLimit, needed: bb.position + unfedCount + stats.audioPositions)
        }
        appendUserTurn(content, encoded: encoded)
        stats.promptTokens = unfedCount
        let h = bb.hidden
        var hidden = [Float](repeating: 0, count: h)
        var logits = [Float](repeating: 0, count: bb.vocab)
        let tp = Date()
        try prefill(last: &hidden)
        stats.prefillSeconds = Date().timeIntervalSince(tp)
        var sampler = Sampler(sampling)
        var audioSampler = Sampler(audioSampling)
        var decoder = StreamingDecoder(t)
        var generatedText: [Int] = []
        var tFirst = Date()
        stats.stopReason = "max_tokens"
        let cfg = model.config
        var inAudio = false, textDone = false
        var left = cfg.interleavedNText
        for step in 0..<maxTokens {
            if isCancelled { stats.stopReason = "cancelled"; break }
            if mode == .interleaved { left -= 1 }
            var feed: Pending
            if !inAudio {
                bb.logits(hidden, into: &logits)
                logitsObserver?(logits)
                let id = logits.withUnsafeMutableBufferPointer { sampler.sample($0, history: generatedText) }
                if step == 0 { tFirst = Date(); stats.timeToFirstToken = tFirst.timeIntervalSince(t0) }
                if stats.audioFrames == 0 { stats.textStepsBeforeAudio += 1 }
                let stop = id == ChatFormat.imEnd || (mode == .text && id == ChatFormat.audioStart)
                if mode == .interleaved && id == ChatFormat.imEnd {
                    // generate_interleaved stops without yielding <|im_end|>; end_turn() adds it to the history
                    _ = decoder.flush()
                    stats.stopReason = "im_end"; unfed = []; break
                }
                generatedText.append(id)
                history.append(id); modalities.append(.text)
                var piece = decoder.push(id)
                if stop || step == maxTokens - 1 || id == ChatFormat.audioStart || id == ChatFormat.textEnd {
                    piece += decoder.flush()
                }
                emit(.text(id: id, piece: piece))
                stats.generatedTokens += 1
                if id == ChatFormat.imEnd {
                    // the answer's own <|im_end|> closes the turn: the next turn starts with end_turn()'s "<|im_end|>\n"
                    stats.stopReason = "im_end"; history.removeLast(); modalities.removeLast(); unfed = []; break
                }
                if mode == .text && id == ChatFormat.audioStart {
                    stats.stopReason = "audio_start"; unfed = [.tokens([id])]; break
                }
                if mode == .sequential && id == ChatFormat.audioStart { inAudio = true }
                if mode == .interleaved {
                    if id == ChatFormat.textEnd { textDone = true }
                    if left == 0 || textDone { inAudio = true; left = cfg.interleavedNAudio }
                }
                feed = .tokens([id])
            } else {
                let th = Date()
                var codes = hidden.withUnsafeBufferPointer {
                    model.audioHead!.sampleFrame($0.baseAddress!, sampler: &audioSampler)
                }
                stats.audioHeadSeconds += Date().timeIntervalSince(th)
                if stats.audioFrames == 0 { stats.firstFrameHeadSeconds = Date().timeIntervalSince(th) }
                if step == 0 { tFirst = Date(); stats.timeToFirstToken = tFirst.timeIntervalSince(t0) }
                if stats.audioFrames == 0 { stats.timeToFirstFrame = Date().timeIntervalSince(t0) }
                if mode == .interleaved && left == 0 && !textDone { inAudio = false; left = cfg.interleavedNText }
                if codes[0] == AudioHead.eoa {
                    codes = Array(repeating: AudioHead.eoa, count: codes.count); inAudio = false
                }
                history.append(Self.audioOutPlaceholder); modalities.append(.audioOut); frames.append(codes)
                emit(.audio(codes: codes))
                stats.audioFrames += 1
                feed = .frame(codes)
            }
            if step == maxTokens - 1 { unfed = [feed]; break }
            if bb.position + 1 > bb.contextLimit { stats.stopReason = "context"; unfed = [feed]; break }
            unfed = [feed]
            try prefill(last: &hidden)
        }
        stats.decodeSeconds = Date().timeIntervalSince(tFirst)
        return stats
    }
}

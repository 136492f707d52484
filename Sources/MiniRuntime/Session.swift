import Foundation

/// Events streamed by a session.
public enum GenerationEvent: Sendable {
    /// One generated text token and its text (may be empty while a UTF-8 character is incomplete).
    case text(id: Int, piece: String)
    case done(GenerationStats)
}

public struct GenerationStats: Sendable, Codable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var prefillSeconds = 0.0
    public var timeToFirstToken = 0.0
    public var decodeSeconds = 0.0
    /// Audio input of this turn: positions it took and the time spent resampling, in the mel front end and the
    /// encoder (conformer + adapter).
    public var audioPositions = 0
    public var audioSeconds = 0.0
    public var melSeconds = 0.0
    public var encoderSeconds = 0.0
    /// Why generation ended: "im_end", "max_tokens", "audio_start" (audio generation is not in this runtime yet),
    /// "context", "cancelled".
    public var stopReason = ""
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / decodeSeconds : 0 }
}

/// What a user turn holds, in order: text and audio clips (any sample rate, mono).
public enum UserContent: Sendable {
    case text(String)
    case audio(AudioClip)
}

/// Modality of each position (the reference's `LFMModality`).
public enum Modality: Int, Sendable { case text = 1, audioIn = 2, audioOut = 3 }

/// A multi-turn chat over one model, in the reference's sequential mode. The KV cache and conv states are
/// kept between turns: history is never prefilled twice.
public final class ChatSession: @unchecked Sendable {
    public let model: LFMModel
    public let system: String?
    /// Every position the conversation holds, in order (what the reference would re-prefill): text token ids, and
    /// `ChatSession.audioInPlaceholder` at audio input positions; `modalities` gives each position's modality.
    public private(set) var history: [Int] = []
    public private(set) var modalities: [Modality] = []
    public static let audioInPlaceholder = -1
    /// Positions not yet run through the backbone: token ids, or audio embeddings.
    enum Pending { case tokens([Int]); case embeddings(AudioEmbeddings) }
    var unfed: [Pending] = []
    var unfedCount: Int { unfed.reduce(0) { n, p in if case .tokens(let t) = p { return n + t.count } else if case .embeddings(let e) = p { return n + e.count }; return n } }
    /// Called with the text logits of every generation step (parity tools).
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
        if case .tokens(let prev)? = unfed.last { unfed[unfed.count - 1] = .tokens(prev + ids) } else { unfed.append(.tokens(ids)) }
    }
    func appendAudio(_ e: AudioEmbeddings) {
        history += Array(repeating: Self.audioInPlaceholder, count: e.count); modalities += Array(repeating: .audioIn, count: e.count)
        unfed.append(.embeddings(e))
    }

    /// Runs every pending position through the backbone; `last` receives the final hidden state.
    func prefill(last: inout [Float]) throws {
        let bb = model.backbone, h = bb.hidden, n = unfedCount
        guard n > 0 else { return }
        var emb = [Float](repeating: 0, count: n * h)
        emb.withUnsafeMutableBufferPointer { e in
            var row = 0
            for p in unfed {
                switch p {
                case .tokens(let ids): for id in ids { bb.embedding(id, into: e.baseAddress! + row * h); row += 1 }
                case .embeddings(let a):
                    a.values.withUnsafeBufferPointer { (e.baseAddress! + row * h).update(from: $0.baseAddress!, count: a.count * h) }
                    row += a.count
                }
            }
        }
        try emb.withUnsafeBufferPointer { e in try last.withUnsafeMutableBufferPointer { try bb.forward(e.baseAddress!, count: n, last: $0.baseAddress!) } }
        unfed = []
    }

    /// Stops a running generation at the next token.
    public func cancel() { lock.lock(); cancelFlag = true; lock.unlock() }
    var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelFlag }

    /// Streams the assistant's answer to `text`.
    public func reply(to text: String, maxTokens: Int = 512, sampling: SamplingParams = .greedy) -> AsyncThrowingStream<GenerationEvent, Error> {
        reply(to: [.text(text)], maxTokens: maxTokens, sampling: sampling)
    }

    /// Streams the assistant's answer to a user turn of text and audio.
    public func reply(to content: [UserContent], maxTokens: Int = 512, sampling: SamplingParams = .greedy) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { cont in
            let worker = Thread { [self] in
                do {
                    let stats = try self.generate(user: content, maxTokens: maxTokens, sampling: sampling) { cont.yield($0) }
                    cont.yield(.done(stats))
                    cont.finish()
                } catch { cont.finish(throwing: error) }
            }
            cont.onTermination = { [weak self] _ in self?.cancel() }
            worker.stackSize = 8 << 20
            worker.start()
        }
    }

    /// Synchronous generation; `emit` is called for every generated token.
    public func generate(user text: String, maxTokens: Int, sampling: SamplingParams, emit: (GenerationEvent) -> Void) throws -> GenerationStats {
        try generate(user: [.text(text)], maxTokens: maxTokens, sampling: sampling, emit: emit)
    }

    /// Synchronous generation for a user turn of text and audio (each piece tokenized or encoded on its own, in
    /// order, as `ChatState.add_text` / `add_audio`); `emit` is called for every generated token.
    public func generate(user content: [UserContent], maxTokens: Int, sampling: SamplingParams, emit: (GenerationEvent) -> Void) throws -> GenerationStats {
        lock.lock(); cancelFlag = false; lock.unlock()
        let t = model.tokenizer, bb = model.backbone
        var stats = GenerationStats()
        let t0 = Date()
        // encode audio first (errors leave the session unchanged)
        var encoded: [AudioEmbeddings?] = []
        for c in content {
            if case .audio(let clip) = c {
                guard let enc = model.audioEncoder else { throw RuntimeError.badInput("\(model.bundle.gguf.path): the bundle has no audio encoder (conformer); audio input is not possible") }
                let e = try enc.embed(clip)
                stats.audioPositions += e.count; stats.audioSeconds += e.stats.audioSeconds
                stats.melSeconds += e.stats.resampleSeconds + e.stats.melSeconds
                stats.encoderSeconds += e.stats.encoderSeconds + e.stats.adapterSeconds
                encoded.append(e)
            } else { encoded.append(nil) }
        }
        if bb.position + unfedCount + stats.audioPositions > bb.contextLimit {
            throw RuntimeError.contextOverflow(limit: bb.contextLimit, needed: bb.position + unfedCount + stats.audioPositions)
        }
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
        stats.promptTokens = unfedCount
        let h = bb.hidden
        var hidden = [Float](repeating: 0, count: h)
        var logits = [Float](repeating: 0, count: bb.vocab)
        // prefill the pending positions
        let tp = Date()
        try prefill(last: &hidden)
        stats.prefillSeconds = Date().timeIntervalSince(tp)
        var sampler = Sampler(sampling)
        var decoder = StreamingDecoder(t)
        var generated: [Int] = []
        var tFirst = Date()
        stats.stopReason = "max_tokens"
        for step in 0..<maxTokens {
            if isCancelled { stats.stopReason = "cancelled"; break }
            bb.logits(hidden, into: &logits)
            logitsObserver?(logits)
            let id = logits.withUnsafeMutableBufferPointer { sampler.sample($0, history: generated) }
            generated.append(id)
            history.append(id); modalities.append(.text)
            var piece = decoder.push(id)
            if step == 0 { tFirst = Date(); stats.timeToFirstToken = tFirst.timeIntervalSince(t0) }
            if id == ChatFormat.imEnd || step == maxTokens - 1 || id == ChatFormat.audioStart { piece += decoder.flush() }
            emit(.text(id: id, piece: piece))
            stats.generatedTokens += 1
            // The answer's own <|im_end|> closes the turn: the next turn starts with the end_turn() of the
            // reference's ChatState ("<|im_end|>\n"), so it is not kept twice.
            if id == ChatFormat.imEnd { stats.stopReason = "im_end"; history.removeLast(); modalities.removeLast(); unfed = []; break }
            if id == ChatFormat.audioStart { stats.stopReason = "audio_start"; unfed = [.tokens([id])]; break }
            if step == maxTokens - 1 { unfed = [.tokens([id])]; break }
            // feed the token back
            if bb.position + 1 > bb.contextLimit { stats.stopReason = "context"; unfed = [.tokens([id])]; break }
            try bb.forward(tokens: [id], last: &hidden)
        }
        stats.decodeSeconds = Date().timeIntervalSince(tFirst)
        return stats
    }
}

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
    /// Why generation ended: "im_end", "max_tokens", "audio_start" (audio generation is not in this runtime yet),
    /// "context", "cancelled".
    public var stopReason = ""
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / decodeSeconds : 0 }
}

/// A multi-turn text chat over one model, in the reference's sequential mode. The KV cache and conv states are
/// kept between turns: history is never prefilled twice.
public final class ChatSession: @unchecked Sendable {
    public let model: LFMModel
    public let system: String?
    /// Every token the conversation holds, in order (what the reference would re-prefill).
    public private(set) var history: [Int] = []
    /// Tokens in `history` not yet run through the backbone.
    var unfed: [Int] = []
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
        history = ChatFormat.tokenize(ChatFormat.opening(system: system), t)
        unfed = history
    }

    /// Stops a running generation at the next token.
    public func cancel() { lock.lock(); cancelFlag = true; lock.unlock() }
    var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelFlag }

    /// Streams the assistant's answer to `text`.
    public func reply(to text: String, maxTokens: Int = 512, sampling: SamplingParams = .greedy) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { cont in
            let worker = Thread { [self] in
                do {
                    let stats = try self.generate(user: text, maxTokens: maxTokens, sampling: sampling) { cont.yield($0) }
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
        lock.lock(); cancelFlag = false; lock.unlock()
        let t = model.tokenizer, bb = model.backbone
        if turns > 0 { let e = ChatFormat.tokenize([ChatFormat.turnEnd], t); history += e; unfed += e }
        turns += 1
        let u = ChatFormat.tokenize(ChatFormat.userTurn(text), t)
        history += u; unfed += u
        var stats = GenerationStats()
        stats.promptTokens = unfed.count
        let h = bb.hidden
        var hidden = [Float](repeating: 0, count: h)
        var logits = [Float](repeating: 0, count: bb.vocab)
        let t0 = Date()
        // prefill the unfed tokens
        try bb.forward(tokens: unfed, last: &hidden)
        unfed = []
        stats.prefillSeconds = Date().timeIntervalSince(t0)
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
            history.append(id)
            var piece = decoder.push(id)
            if step == 0 { tFirst = Date(); stats.timeToFirstToken = tFirst.timeIntervalSince(t0) }
            if id == ChatFormat.imEnd || step == maxTokens - 1 || id == ChatFormat.audioStart { piece += decoder.flush() }
            emit(.text(id: id, piece: piece))
            stats.generatedTokens += 1
            // The answer's own <|im_end|> closes the turn: the next turn starts with the end_turn() of the
            // reference's ChatState ("<|im_end|>\n"), so it is not kept twice.
            if id == ChatFormat.imEnd { stats.stopReason = "im_end"; history.removeLast(); unfed = []; break }
            if id == ChatFormat.audioStart { stats.stopReason = "audio_start"; unfed = [id]; break }
            if step == maxTokens - 1 { unfed = [id]; break }
            // feed the token back
            if bb.position + 1 > bb.contextLimit { stats.stopReason = "context"; unfed = [id]; break }
            try bb.forward(tokens: [id], last: &hidden)
        }
        stats.decodeSeconds = Date().timeIntervalSince(tFirst)
        return stats
    }
}

import Foundation
import Formats
import Synchronization

/// Events streamed by a session.
public enum GenerationEvent: Sendable {
    /// One generated text token and its text (may be empty while a UTF-8 character is incomplete).
    case text(id: Int, piece: String)
    /// One generated audio frame: `codebooks` Mimi codes (all 2048 for the end-of-audio frame).
    case audio(codes: [Int])
    /// Decoded speech: 24 kHz mono samples, in order (turns asked for `AudioOutput.speech`).
    case samples([Float])
    case done(GenerationStats)
}

/// Why a turn ended.
public enum StopReason: String, Sendable, Codable {
    /// The model ended its answer (<|im_end|>).
    case imEnd = "im_end"
    /// The step budget (`maxTokens`) ran out.
    case maxTokens = "max_tokens"
    /// A text-only turn reached <|audio_start|>.
    case audioStart = "audio_start"
    /// The context limit was reached.
    case context
    case cancelled
}

/// What a turn that speaks gives besides its codes.
public enum AudioOutput: Sendable, Equatable {
    /// Codes only (`.audio` events).
    case codes
    /// Codes and decoded samples (`.samples` events) from the given decoder (nil: the detokenizer when the bundle
    /// has one, else Mimi). Frames are decoded on a thread of their own while the model samples the next ones.
    case speech(decoder: DecoderKind?)
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
    /// Decoded speech (`AudioOutput.speech`): samples, decoder time (on its own thread), the first chunk's decode
    /// time and the time from the start of the turn until the first samples were handed out.
    public var speechSamples = 0
    public var decoderSeconds = 0.0
    public var firstDecodeSeconds = 0.0
    public var timeToFirstAudio = 0.0
    /// The decoder that spoke (nil: codes only).
    public var decoder: DecoderKind?
    /// Why generation ended.
    public var stopReason = StopReason.maxTokens
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

/// A multi-turn conversation on a shared model. It holds only its own state: the backbone's caches (the history
/// is never prefilled twice), the depthformer's, and the positions it has seen. Any number of conversations run on
/// one `LFMModel` at the same time; one conversation runs one turn at a time (a second call waits for the first).
public final class Conversation: Sendable {
    public let model: LFMModel
    public let system: String?
    let state: Mutex<ConversationState>
    private let cancelled = Atomic<Bool>(false)

    public init(model: LFMModel, system: String? = nil) {
        self.model = model
        self.system = system
        state = Mutex(ConversationState(model: model, system: system))
    }

    /// A conversation for a task preset (its system prompt).
    public convenience init(model: LFMModel, task: TaskPreset) { self.init(model: model, system: task.system) }

    /// Every position the conversation holds, in order (what the reference would re-prefill).
    public var history: [Position] { state.withLock { $0.prompt.positions } }
    /// The generated frames, in order (`Position.audioOut(frame:)` indexes them).
    public var frames: [[Int]] { state.withLock { $0.prompt.frames } }
    /// Positions the backbone has consumed.
    public var position: Int { state.withLock { $0.backbone.position } }
    /// Bytes of this conversation's caches (KV caches reserved in full at the model's context limit, conv carries,
    /// the depthformer's frame cache).
    public var cacheBytes: Int { state.withLock { $0.backbone.bytes + ($0.head?.bytes ?? 0) } }

    /// Receives intermediate tensors of the turns that follow: "lfm.hidden" per layer, "text.logits" per text step,
    /// "depth.logits" per codebook, "conformer.layer", and the decoder's stages.
    public func setTrace(_ trace: Trace?) {
        state.withLock { s in
            s.trace = trace; s.backbone.trace = trace; s.head?.trace = trace
        }
    }

    /// Stops a running turn at its next step.
    public func cancel() { cancelled.store(true, ordering: .sequentiallyConsistent) }
    var isCancelled: Bool { cancelled.load(ordering: .sequentiallyConsistent) }

    /// Streams the assistant's answer to `text`.
    public func reply(
        to text: String, maxTokens: Int = 512, sampling: SamplingParams = .greedy
    ) -> AsyncThrowingStream<GenerationEvent, Error> {
        reply(to: [.text(text)], maxTokens: maxTokens, sampling: sampling)
    }

    /// Streams the assistant's answer to a user turn of text and audio, in any mode; with `audio: .speech(…)` the
    /// stream carries decoded samples as well as codes. Ending the stream early cancels the turn.
    public func reply(
        to content: [UserContent], mode: GenerationMode = .text, maxTokens: Int = 512,
        sampling: SamplingParams = .greedy, audioSampling: SamplingParams = .greedy, audio: AudioOutput = .codes
    ) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { cont in
            let worker = Thread { [self] in
                do {
                    let stats = try self.generate(
                        user: content, mode: mode, maxTokens: maxTokens, sampling: sampling,
                        audioSampling: audioSampling, audio: audio
                    ) { cont.yield($0) }
                    cont.yield(.done(stats))
                    cont.finish()
                } catch { cont.finish(throwing: error) }
            }
            cont.onTermination = { [weak self] reason in
                if case .cancelled = reason { self?.cancel() }
            }
            worker.stackSize = 8 << 20
            worker.start()
        }
    }

    /// Streams the answer to a user turn the way a task preset runs it (its mode and the reference's audio sampling
    /// for the task), with speech decoded to samples unless `audio` says otherwise.
    public func reply(
        to content: [UserContent], task: TaskPreset, maxTokens: Int = 512, sampling: SamplingParams = .greedy,
        seed: UInt64 = 0, audio: AudioOutput = .speech(decoder: nil)
    ) -> AsyncThrowingStream<GenerationEvent, Error> {
        reply(
            to: content, mode: task.mode, maxTokens: maxTokens, sampling: sampling,
            audioSampling: task.audioSampling(seed: seed), audio: audio)
    }

    /// Synchronous text generation; `emit` is called for every generated token.
    public func generate(
        user text: String, maxTokens: Int, sampling: SamplingParams, emit: (GenerationEvent) -> Void
    ) throws -> GenerationStats {
        try generate(user: [.text(text)], maxTokens: maxTokens, sampling: sampling, emit: emit)
    }

    /// Synchronous generation for a user turn of text and audio (each piece tokenized or encoded on its own, in
    /// order, as `ChatState.add_text` / `add_audio`); `emit` is called on this thread for every token, frame and
    /// chunk of samples (on the model's decode thread when it batches, `ModelOptions.batchDecode`, while this one
    /// waits), and may call `cancel()` but nothing else of this conversation (the turn holds its state).
    /// A turn that fails before generating (bad audio, context overflow) leaves the conversation unchanged.
    public func generate(
        user content: [UserContent], mode: GenerationMode = .text, maxTokens: Int, sampling: SamplingParams,
        audioSampling: SamplingParams = .greedy, audio: AudioOutput = .codes, emit: (GenerationEvent) -> Void
    ) throws -> GenerationStats {
        cancelled.store(false, ordering: .sequentiallyConsistent)
        return try state.withLock { s in
            let turn = try Turn(
                model: model, state: s, content: content, mode: mode, maxTokens: maxTokens, sampling: sampling,
                audioSampling: audioSampling, audio: audio, deferPrefill: model.scheduler != nil)
            // events are Sendable values: `emit` never sees the state
            if let scheduler = model.scheduler {
                try scheduler.run(.init(turn), cancelled: { [self] in isCancelled }, emit: emit)
            } else {
                while let events = try turn.next(cancelled: isCancelled) { for e in events { emit(e) } }
            }
            return turn.stats
        }
    }
}

/// A conversation's state: the components' states and the prompt so far.
final class ConversationState {
    let backbone: LFM2Backbone.State
    let head: AudioHead.State?
    var prompt: PromptBuilder
    var trace: Trace?
    /// Where the last answer began: the backbone's mark and the positions before it (`truncateAnswer`).
    var answerStart: (mark: LFM2StackState.Mark, positions: Int)?
    init(model: LFMModel, system: String?) {
        backbone = model.backbone.makeState()
        head = model.audioHead?.makeState()
        prompt = PromptBuilder(tokenizer: model.tokenizer, system: system)
    }

    /// Runs every pending position through the backbone; returns the final hidden state of the last one.
    func prefill(_ model: LFMModel) throws -> [Float]? {
        let n = prompt.pendingCount
        guard n > 0 else { return nil }
        let emb = prompt.pendingEmbeddings(model)
        let last = try emb.withUnsafeBufferPointer {
            try model.backbone.step(.init(embeddings: $0.baseAddress!, count: n), state: backbone)
        }
        prompt.clearPending()
        return last
    }
}

/// One assistant turn as a generator: `init` encodes the audio, builds the prompt and prefills it; each `next()`
/// runs one step of the mode's schedule (a text token or an audio frame, and the samples decoded since) and returns
/// its events, nil once the turn is over.
final class Turn {
    let model: LFMModel
    let state: ConversationState
    let maxTokens: Int
    private(set) var stats = GenerationStats()
    private var schedule: TurnSchedule
    private var sampler: Sampler
    private var detok: StreamingDecoder
    private var generated: [Int] = []
    private var hidden: [Float]
    private var step = 0
    private var finished = false
    private let t0 = Date()
    private var tFirst = Date()
    private let speech: SpeechPipeline?

    init(
        model: LFMModel, state: ConversationState, content: [UserContent], mode: GenerationMode, maxTokens: Int,
        sampling: SamplingParams, audioSampling: SamplingParams, audio: AudioOutput, deferPrefill: Bool = false
    ) throws {
        self.model = model; self.state = state; self.maxTokens = maxTokens
        let path = model.bundle.gguf.path
        if mode != .text && model.audioHead == nil {
            throw RuntimeError.badInput(
                "\(path): the bundle has no audio head (depthformer); audio output is not possible")
        }
        // encode audio first (errors leave the conversation unchanged)
        var encoded: [AudioEmbeddings?] = []
        for c in content {
            guard case .audio(let clip) = c else { encoded.append(nil); continue }
            guard let enc = model.audioEncoder else {
                throw RuntimeError.badInput(
                    "\(path): the bundle has no audio encoder (conformer); audio input is not possible")
            }
            let e = try enc.embed(clip, trace: state.trace)
            stats.audioPositions += e.count; stats.audioSeconds += e.stats.audioSeconds
            stats.melSeconds += e.stats.resampleSeconds + e.stats.melSeconds
            stats.encoderSeconds += e.stats.encoderSeconds + e.stats.adapterSeconds
            encoded.append(e)
        }
        let bb = model.backbone
        let needed = state.backbone.position + state.prompt.pendingCount + stats.audioPositions
        if needed > bb.contextLimit { throw RuntimeError.contextOverflow(limit: bb.contextLimit, needed: needed) }
        speech =
            if case .speech(let kind) = audio, mode != .text {
                try SpeechPipeline(model: model, kind: kind, trace: state.trace)
            } else { nil }
        stats.decoder = speech?.kind
        schedule = mode.schedule(model)
        sampler = Sampler(sampling)
        detok = StreamingDecoder(model.tokenizer)
        state.head?.sampler = Sampler(audioSampling)
        state.prompt.userTurn(content, encoded: encoded)
        stats.promptTokens = state.prompt.pendingCount
        hidden = [Float](repeating: 0, count: bb.hidden)
        stats.stopReason = .maxTokens
        if !deferPrefill { try prefill() }
    }

    /// Runs the prompt through the backbone (in `init`, or on the decode thread when the turn is batched, so that
    /// no two threads take turns on the pool job by job).
    func prefill() throws {
        let tp = Date()
        do {
            hidden = try state.prefill(model) ?? hidden
        } catch {
            _ = try? speech?.finish()
            finished = true
            throw error
        }
        stats.prefillSeconds = Date().timeIntervalSince(tp)
        state.answerStart = (state.backbone.stack.mark(), state.prompt.positions.count)
    }

    deinit { if !finished { _ = try? speech?.finish() } }  // a failed turn still stops the decoder thread

    /// The events of the next step; nil when the turn is over.
    func next(cancelled: Bool) throws -> [GenerationEvent]? {
        guard !finished else { return nil }
        var events: [GenerationEvent] = []
        guard let head = try prepare(cancelled: cancelled, &events) else { return events }
        let go: Bool
        switch head {
        case .text:
            var logits = model.backbone.logits(hidden)
            go = try takeText(&logits, &events)
        case .audio:
            let th = Date()
            let codes = model.audioHead!.step(hidden, state: state.head!)
            go = try takeFrame(codes, headSeconds: Date().timeIntervalSince(th), &events)
        }
        if go {
            try feedAlone()
        } else {
            try stop(&events)
        }
        return events
    }

    /// What a step samples from the hidden state.
    enum Head { case text, audio }

    /// Whether the turn is over; its hidden state (the last position's, final-normed).
    var isFinished: Bool { finished }
    var lastHidden: [Float] { hidden }

    /// The first part of a step: nil when the turn ends here (cancelled, no steps left; `events` gets the rest of
    /// its samples), else which head the step samples.
    func prepare(cancelled: Bool, _ events: inout [GenerationEvent]) throws -> Head? {
        if cancelled && step < maxTokens {
            stats.stopReason = .cancelled
            try end(&events)
            return nil
        }
        if step >= maxTokens {
            try end(&events)
            return nil
        }
        if let speech { handOut(try speech.poll(), &events) }
        schedule.beginStep()
        return schedule.textNext ? .text : .audio
    }

    /// Ends the turn after a step that returned false from `takeText` / `takeFrame`.
    func stop(_ events: inout [GenerationEvent]) throws {
        step += 1
        try end(&events)
    }

    /// Runs the step's new positions through the backbone on their own (outside a batch).
    func feedAlone() throws {
        hidden = try state.prefill(model) ?? hidden
        step += 1
    }

    /// After the backbone ran the step's new position elsewhere (a batch): its final hidden state.
    func fed(_ h: [Float]) {
        state.prompt.clearPending()
        hidden = h
        step += 1
    }

    private func handOut(_ chunks: [[Float]], _ events: inout [GenerationEvent]) {
        for c in chunks where !c.isEmpty {
            if stats.speechSamples == 0 { stats.timeToFirstAudio = Date().timeIntervalSince(t0) }
            stats.speechSamples += c.count
            events.append(.samples(c))
        }
    }

    private func end(_ events: inout [GenerationEvent]) throws {
        finished = true
        stats.decodeSeconds = Date().timeIntervalSince(tFirst)
        if let speech {
            let (chunks, seconds, first) = try speech.finish()
            handOut(chunks, &events)
            stats.decoderSeconds = seconds
            stats.firstDecodeSeconds = first
        }
    }

    /// A step's text token from its logits; false when the turn ends with it (or must end before the next step).
    func takeText(_ logits: inout [Float], _ events: inout [GenerationEvent]) throws -> Bool {
        let bb = model.backbone, tk = model.tokens
        state.trace?(TraceEvent(name: "text.logits", values: logits, width: bb.vocab))
        let id = logits.withUnsafeMutableBufferPointer { sampler.sample($0, history: generated) }
        if step == 0 { tFirst = Date(); stats.timeToFirstToken = tFirst.timeIntervalSince(t0) }
        if stats.audioFrames == 0 { stats.textStepsBeforeAudio += 1 }
        let stop = schedule.afterText(id)
        if stop == .silentImEnd {
            _ = detok.flush()
            stats.stopReason = .imEnd
            state.prompt.clearPending()
            return false
        }
        generated.append(id)
        var piece = detok.push(id)
        if stop != nil || step == maxTokens - 1 || id == tk.audioStart || id == tk.textEnd {
            piece += detok.flush()
        }
        events.append(.text(id: id, piece: piece))
        stats.generatedTokens += 1
        switch stop {
        case .imEnd?:
            stats.stopReason = .imEnd
            state.prompt.clearPending()
            return false
        case .audioStart?:
            // the history keeps <|audio_start|>; the backbone sees it with the next turn
            stats.stopReason = .audioStart
            state.prompt.generated(id)
            return false
        default:
            state.prompt.generated(id)
        }
        return goesOn()
    }

    /// A step's audio frame (sampled by the audio head in `headSeconds`); false when the turn must end after it.
    /// `waitFirst`: the first frame's samples are awaited so that they go out with this step.
    func takeFrame(
        _ sampled: [Int], headSeconds: Double, waitFirst: Bool = true, _ events: inout [GenerationEvent]
    ) throws -> Bool {
        let tk = model.tokens
        var codes = sampled
        stats.audioHeadSeconds += headSeconds
        if stats.audioFrames == 0 { stats.firstFrameHeadSeconds = headSeconds }
        if step == 0 { tFirst = Date(); stats.timeToFirstToken = tFirst.timeIntervalSince(t0) }
        if stats.audioFrames == 0 { stats.timeToFirstFrame = Date().timeIntervalSince(t0) }
        let end = codes[0] == tk.endOfAudio
        if end { codes = Array(repeating: tk.endOfAudio, count: codes.count) }
        schedule.afterFrame(endOfAudio: end)
        state.prompt.frame(codes)
        events.append(.audio(codes: codes))
        stats.audioFrames += 1
        if let speech {
            speech.submit(codes, wait: waitFirst && speech.submitted == 0)
            handOut(try speech.poll(), &events)
        }
        return goesOn()
    }

    /// Whether another step follows (budget and context left).
    private func goesOn() -> Bool {
        if step == maxTokens - 1 { return false }
        if state.backbone.position + 1 > model.backbone.contextLimit { stats.stopReason = .context; return false }
        return true
    }
}

import Foundation

/// Which decoder turns codes into a waveform.
public enum DecoderKind: String, Sendable, Codable, CaseIterable { case mimi, detokenizer }

/// One stream of generated frames into 24 kHz samples with the chosen decoder: the shared decoder weights and this
/// stream's own state. End-of-audio frames are not decoded: they end an utterance (the detokenizer flushes its last
/// 480 samples and starts afresh; Mimi keeps its state for the rest of the turn, as the reference demo does).
/// `reset()` starts a new turn. Used by one thread at a time (a conversation, or a command).
public final class SpeechDecoder: StreamingState {
    public let kind: DecoderKind
    enum Stream {
        case mimi(MimiDecoder, MimiDecoder.State)
        case detokenizer(Detokenizer, Detokenizer.State)
    }
    let stream: Stream
    let endOfAudio: Int
    public private(set) var framesDecoded = 0
    public private(set) var decodeSeconds = 0.0
    public static let sampleRate = 24000
    private var open = false

    /// `kind` nil: the detokenizer when the bundle has one, else Mimi.
    public init(model: LFMModel, kind: DecoderKind? = nil) throws {
        let k = kind ?? (model.detokenizer != nil ? .detokenizer : .mimi)
        switch k {
        case .mimi:
            guard let m = model.mimi else {
                throw RuntimeError.badInput("\(model.bundle.gguf.path): the bundle has no Mimi decoder")
            }
            stream = .mimi(m, m.makeState())
        case .detokenizer:
            guard let d = model.detokenizer else {
                throw RuntimeError.badInput(
                    """
                    \(model.bundle.gguf.path): the bundle has no LFM2 detokenizer (LFM2-Audio-1.5B ships only \
                    Mimi; use --decoder mimi)
                    """
                )
            }
            stream = .detokenizer(d, d.makeState())
        }
        self.kind = k
        endOfAudio = model.tokens.endOfAudio
    }

    /// Receives the decoder's intermediate stages when set.
    public var trace: Trace? {
        get {
            switch stream {
            case .mimi(_, let s): return s.trace
            case .detokenizer(_, let s): return s.trace
            }
        }
        set {
            switch stream {
            case .mimi(_, let s): s.trace = newValue
            case .detokenizer(_, let s): s.trace = newValue
            }
        }
    }

    /// The decoder's own state, whichever decoder it is.
    private var decoderState: StreamingState {
        switch stream {
        case .mimi(_, let s): return s
        case .detokenizer(_, let s): return s
        }
    }

    public func reset() {
        decoderState.reset()
        open = false
    }

    public var bytes: Int { decoderState.bytes }

    /// Samples for one frame (empty for an end-of-audio frame, except the detokenizer's flushed tail).
    public func push(_ codes: [Int]) throws -> [Float] {
        let t0 = Date()
        defer { decodeSeconds += Date().timeIntervalSince(t0) }
        if codes.contains(where: { $0 >= endOfAudio }) { return endUtterance() }
        framesDecoded += 1
        open = true
        switch stream {
        case .mimi(let m, let s): return try m.step(codes, state: s)
        case .detokenizer(let d, let s): return try d.step(codes, state: s)
        }
    }

    /// The rest of an unfinished utterance (the detokenizer's last 480 samples).
    public func finish() -> [Float] {
        let t0 = Date()
        defer { decodeSeconds += Date().timeIntervalSince(t0) }
        guard open else { return [] }
        return endUtterance()
    }

    private func endUtterance() -> [Float] {
        open = false
        guard case .detokenizer(let d, let s) = stream else { return [] }
        let tail = d.flush(state: s)
        s.reset()
        return tail
    }
}

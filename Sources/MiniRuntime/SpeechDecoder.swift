import Foundation

/// Which decoder turns codes into a waveform.
public enum DecoderKind: String, Sendable, CaseIterable { case mimi, detokenizer }

/// Streams generated frames into 24 kHz samples with the chosen decoder. End-of-audio frames are not decoded: they
/// end an utterance (the detokenizer flushes its last 480 samples and starts afresh; Mimi keeps its state for the
/// rest of the turn, as the reference demo does). `reset()` starts a new turn.
public final class SpeechDecoder: @unchecked Sendable {
    public let kind: DecoderKind
    let mimi: MimiDecoder?
    let detok: Detokenizer?
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
            mimi = m; detok = nil
        case .detokenizer:
            guard let d = model.detokenizer else {
                throw RuntimeError.badInput(
                    "\(model.bundle.gguf.path): the bundle has no LFM2 detokenizer (LFM2-Audio-1.5B ships only Mimi; use --decoder mimi)"
                )
            }
            detok = d; mimi = nil
        }
        self.kind = k
        reset()
    }

    public func reset() { mimi?.reset(); detok?.reset(); open = false }

    /// Samples for one frame (empty for an end-of-audio frame, except the detokenizer's flushed tail).
    public func push(_ codes: [Int]) throws -> [Float] {
        let t0 = Date()
        defer { decodeSeconds += Date().timeIntervalSince(t0) }
        if codes.contains(where: { $0 >= AudioHead.eoa }) {
            // end of an utterance
            let tail = detok?.flush() ?? []
            if detok != nil { detok!.reset() }
            open = false
            return tail
        }
        framesDecoded += 1
        open = true
        if let mimi { return try mimi.decode(frame: codes) }
        return try detok!.decode(frame: codes)
    }

    /// The rest of an unfinished utterance (the detokenizer's last 480 samples).
    public func finish() -> [Float] {
        let t0 = Date()
        defer { decodeSeconds += Date().timeIntervalSince(t0) }
        guard open else { return [] }
        open = false
        let tail = detok?.flush() ?? []
        detok?.reset()
        return tail
    }
}

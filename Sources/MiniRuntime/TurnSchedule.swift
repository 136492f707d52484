import Foundation
import Formats

/// How a text step ends a turn.
enum TextStop {
    /// <|im_end|> was emitted and the turn ends; the history does not keep it (the next turn opens with
    /// "<|im_end|>\n").
    case imEnd
    /// <|im_end|> ends the turn without being emitted (`generate_interleaved` stops before yielding it).
    case silentImEnd
    /// A text-only turn stops at <|audio_start|>, which the history keeps (and the backbone has not seen).
    case audioStart
}

/// Which modality each step of a turn produces, one type per generation mode (liquid_audio/model/lfm2_audio.py).
protocol TurnSchedule {
    /// Whether the next step samples a text token (else an audio frame).
    var textNext: Bool { get }
    mutating func beginStep()
    /// After a text token: nil to go on, or how the turn ends.
    mutating func afterText(_ id: Int) -> TextStop?
    mutating func afterFrame(endOfAudio: Bool)
}

/// Text only: an <|audio_start|> ends the turn (`lfm-run text`, ASR).
struct TextSchedule: TurnSchedule {
    let tokens: SpecialTokenIds
    var textNext: Bool { true }
    mutating func beginStep() {}
    mutating func afterText(_ id: Int) -> TextStop? {
        id == tokens.imEnd ? .imEnd : id == tokens.audioStart ? .audioStart : nil
    }
    mutating func afterFrame(endOfAudio: Bool) {}
}

/// `generate_sequential`: text; after <|audio_start|> frames until end-of-audio; then text again.
struct SequentialSchedule: TurnSchedule {
    let tokens: SpecialTokenIds
    private(set) var textNext = true
    init(tokens: SpecialTokenIds) { self.tokens = tokens }
    mutating func beginStep() {}
    mutating func afterText(_ id: Int) -> TextStop? {
        if id == tokens.imEnd { return .imEnd }
        if id == tokens.audioStart { textNext = false }
        return nil
    }
    mutating func afterFrame(endOfAudio: Bool) { if endOfAudio { textNext = true } }
}

/// `generate_interleaved`: `nText` text steps, then `nAudio` frames, alternating until <|text_end|>; then frames
/// until end-of-audio. Every step counts against the current run, text or audio.
struct InterleavedSchedule: TurnSchedule {
    let tokens: SpecialTokenIds
    let nText: Int, nAudio: Int
    private(set) var textNext = true
    private var left: Int
    private var textDone = false
    init(tokens: SpecialTokenIds, nText: Int, nAudio: Int) {
        self.tokens = tokens; self.nText = nText; self.nAudio = nAudio; left = nText
    }
    mutating func beginStep() { left -= 1 }
    mutating func afterText(_ id: Int) -> TextStop? {
        if id == tokens.imEnd { return .silentImEnd }
        if id == tokens.textEnd { textDone = true }
        if left == 0 || textDone { textNext = false; left = nAudio }
        return nil
    }
    mutating func afterFrame(endOfAudio: Bool) {
        if left == 0 && !textDone { textNext = true; left = nText }
        if endOfAudio { textNext = true }
    }
}

extension GenerationMode {
    func schedule(_ model: LFMModel) -> TurnSchedule {
        switch self {
        case .text: return TextSchedule(tokens: model.tokens)
        case .sequential: return SequentialSchedule(tokens: model.tokens)
        case .interleaved:
            return InterleavedSchedule(
                tokens: model.tokens, nText: model.config.interleavedNText, nAudio: model.config.interleavedNAudio)
        }
    }
}

import Foundation

/// The four TTS voices of the reference (liquid-audio's README: "Perform TTS. Use the <voice> voice.").
public enum Voice: String, CaseIterable, Sendable {
    case usMale = "us-male", usFemale = "us-female", ukMale = "uk-male", ukFemale = "uk-female"

    /// The name as the system prompt spells it.
    public var promptName: String {
        switch self {
        case .usMale: return "US male"
        case .usFemale: return "US female"
        case .ukMale: return "UK male"
        case .ukFemale: return "UK female"
        }
    }
}

/// A task as the reference runs it: its system prompt, generation mode and audio sampling defaults
/// (liquid_audio/demo/chat.py `chat_response`: temperature 1.0, top-k 4 for interleaved chat; the README's TTS example:
/// 0.8, 64; ASR yields no audio).
public enum TaskPreset: Sendable, Equatable {
    case asr
    case tts(Voice)
    case chat

    public var system: String {
        switch self {
        case .asr: return ChatFormat.System.asr
        case .tts(let v): return ChatFormat.System.tts(voice: v.promptName)
        case .chat: return ChatFormat.System.interleaved
        }
    }

    public var mode: GenerationMode {
        switch self {
        case .asr, .tts: return .sequential
        case .chat: return .interleaved
        }
    }

    /// The reference's audio sampling (temperature, top-k) for this task.
    public var audioTemperature: Float {
        switch self {
        case .asr, .chat: return 1.0
        case .tts: return 0.8
        }
    }
    public var audioTopK: Int {
        switch self {
        case .asr, .chat: return 4
        case .tts: return 64
        }
    }

    /// The audio sampling parameters: the task's defaults unless overridden; argmax when `greedy`.
    public func audioSampling(
        temperature: Float? = nil, topK: Int? = nil, seed: UInt64 = 0, greedy: Bool = false
    ) -> SamplingParams {
        greedy
            ? SamplingParams(seed: seed)
            : SamplingParams(temperature: temperature ?? audioTemperature, topK: topK ?? audioTopK, seed: seed)
    }
}

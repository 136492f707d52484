import Foundation

/// Prompt assembly exactly as the reference's `ChatState`: "<|startoftext|>" first, each piece tokenized on its
/// own, no automatic BOS, a system turn only when a system prompt is given, the assistant prompt last.
@_spi(Tools) public enum ChatFormat {
    public static let startOfText = "<|startoftext|>"
    public static func turnStart(_ role: String) -> String { "<|im_start|>\(role)\n" }
    public static let turnEnd = "<|im_end|>\n"

    /// Pieces of a conversation start: start token, optional system turn.
    public static func opening(system: String?) -> [String] {
        var p = [startOfText]
        if let s = system { p += [turnStart("system"), s, turnEnd] }
        return p
    }
    public static func tokenize(_ pieces: [String], _ t: Tokenizer) -> [Int] { pieces.flatMap { t.encode($0) } }

    /// System prompts of the reference README.
    public enum System {
        public static let asr = "Perform ASR."
        public static let interleaved = "Respond with interleaved text and audio."
        public static func tts(voice: String) -> String { "Perform TTS. Use the \(voice) voice." }
    }
}

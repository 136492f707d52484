import Foundation
import MiniRuntime

/// A running turn's events, first awaited before the response starts (so that bad audio or a context overflow is
/// a 400, not a broken stream); ending early cancels the turn.
final class TurnEvents: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<GenerationEvent, Error>.AsyncIterator
    private var first: GenerationEvent?
    private var done = false
    let conversation: Conversation
    let registry: ConversationRegistry

    init(
        _ stream: AsyncThrowingStream<GenerationEvent, Error>, conversation: Conversation,
        registry: ConversationRegistry
    ) {
        iterator = stream.makeAsyncIterator()
        self.conversation = conversation
        self.registry = registry
        registry.running(conversation)
    }

    /// Waits for the first event; errors here are the request's fault (bad audio, too long).
    func start() async throws {
        do { first = try await iterator.next() } catch {
            finish()
            throw error
        }
        if first == nil { finish() }
    }

    func next() async throws -> GenerationEvent? {
        if let f = first {
            first = nil
            return f
        }
        if done { return nil }
        do {
            let e = try await iterator.next()
            if e == nil { finish() }
            return e
        } catch {
            finish()
            throw error
        }
    }

    /// Ends the turn (cancels it when still running).
    func finish() {
        if done { return }
        done = true
        conversation.cancel()
        registry.finished(conversation)
    }

    deinit { if !done { conversation.cancel(); registry.finished(conversation) } }
}

/// Text pieces that are not part of the answer (control tokens).
func visibleText(_ id: Int, _ piece: String, _ model: LFMModel) -> String {
    let t = model.tokens
    if id == t.imEnd || id == t.audioStart || id == t.textEnd || id == t.imStart || id == t.startOfText { return "" }
    return piece
}

/// Groups 24 kHz samples into whole 80 ms frames (1920 samples) for the wire.
struct FrameChunker {
    static let frame = 1920
    var pending: [Float] = []
    mutating func push(_ s: [Float]) -> [Float]? {
        pending += s
        let n = pending.count / Self.frame * Self.frame
        guard n > 0 else { return nil }
        let out = Array(pending[0..<n])
        pending.removeFirst(n)
        return out
    }
    mutating func flush() -> [Float]? {
        guard !pending.isEmpty else { return nil }
        defer { pending = [] }
        return pending
    }
}

func finishReason(_ r: StopReason) -> String {
    switch r {
    case .imEnd, .audioStart, .cancelled: return "stop"
    case .maxTokens, .context: return "length"
    }
}

/// The OpenAI voice names, mapped onto the model's four voices.
enum Voices {
    static let openAI: [String: Voice] = [
        "alloy": .usFemale, "ash": .usMale, "ballad": .ukMale, "coral": .usFemale, "echo": .usMale,
        "fable": .ukMale, "nova": .usFemale, "onyx": .usMale, "sage": .ukFemale, "shimmer": .ukFemale,
        "verse": .usMale, "marin": .usFemale, "cedar": .usMale,
    ]
    static func parse(_ s: String?, param: String) throws -> Voice {
        guard let s else { return .ukFemale }
        if let v = Voice(rawValue: s.lowercased()) ?? openAI[s.lowercased()] { return v }
        throw APIError.bad(
            "unknown voice '\(s)': use us-male, us-female, uk-male, uk-female or an OpenAI voice name", param: param,
            code: "invalid_voice")
    }
}

func newId(_ prefix: String) -> String {
    prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
}

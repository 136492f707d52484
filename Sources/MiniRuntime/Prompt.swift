import Foundation
import Formats

/// One position of a conversation, in order: a text token, an audio-input row, or a generated audio frame (its
/// index in the conversation's frames).
public enum Position: Sendable, Equatable {
    case text(Int)
    case audioIn
    case audioOut(frame: Int)

    /// The reference's `LFMModality` of the position.
    public var modality: Modality {
        switch self {
        case .text: return .text
        case .audioIn: return .audioIn
        case .audioOut: return .audioOut
        }
    }
    /// The token id of a text position.
    public var textId: Int? { if case .text(let id) = self { return id } else { return nil } }
}

/// Positions not yet run through the backbone.
enum PromptSegment {
    case tokens([Int])
    case embeddings(AudioEmbeddings)
    case frame([Int])
    var count: Int {
        switch self {
        case .tokens(let t): return t.count
        case .embeddings(let e): return e.count
        case .frame: return 1
        }
    }
}

/// The one prompt builder (the reference's `ChatState`, liquid_audio/processor.py): "<|startoftext|>" first, each
/// piece tokenized on its own, no automatic BOS, a system turn only when there is a system prompt, each user turn
/// closed by "<|im_end|>\n<|im_start|>assistant\n", and the previous turn's "<|im_end|>\n" before the next. It
/// records every position in `positions` and keeps the ones not yet fed to the backbone in `pending`.
@_spi(Tools) public struct PromptBuilder {
    let tokenizer: Tokenizer
    public private(set) var positions: [Position] = []
    public private(set) var frames: [[Int]] = []
    private(set) var pending: [PromptSegment] = []
    private(set) var turns = 0

    public init(tokenizer: Tokenizer, system: String?) {
        self.tokenizer = tokenizer
        text(ChatFormat.tokenize(ChatFormat.opening(system: system), tokenizer))
    }

    public var pendingCount: Int { pending.reduce(0) { $0 + $1.count } }

    public mutating func text(_ ids: [Int]) {
        positions += ids.map { .text($0) }
        if case .tokens(let prev)? = pending.last {
            pending[pending.count - 1] = .tokens(prev + ids)
        } else {
            pending.append(.tokens(ids))
        }
    }

    mutating func audio(_ e: AudioEmbeddings) {
        positions += Array(repeating: .audioIn, count: e.count)
        pending.append(.embeddings(e))
    }

    mutating func frame(_ codes: [Int]) {
        positions.append(.audioOut(frame: frames.count))
        frames.append(codes)
        pending.append(.frame(codes))
    }

    /// A generated token that the history keeps but the backbone has not seen yet.
    mutating func generated(_ id: Int) { positions.append(.text(id)); pending.append(.tokens([id])) }

    /// Forgets the last position (the answer's own <|im_end|>: the next turn opens with "<|im_end|>\n").
    mutating func dropLastPosition() { positions.removeLast() }

    /// Keeps the first `count` positions (and the frames they name); the positions after them are forgotten, and
    /// the kept ones from `refeedFrom` on become pending again (a rewound backbone computes them anew).
    mutating func truncate(to count: Int, refeedFrom: Int) {
        positions.removeLast(positions.count - count)
        var keptFrames = 0
        var segments: [PromptSegment] = []
        for (i, p) in positions.enumerated() {
            switch p {
            case .audioOut(let f):
                keptFrames = f + 1
                if i >= refeedFrom { segments.append(.frame(frames[f])) }
            case .text(let id):
                guard i >= refeedFrom else { continue }
                if case .tokens(let prev)? = segments.last {
                    segments[segments.count - 1] = .tokens(prev + [id])
                } else {
                    segments.append(.tokens([id]))
                }
            case .audioIn: precondition(i < refeedFrom, "an answer holds no audio input")
            }
        }
        frames.removeLast(frames.count - keptFrames)
        pending = segments
    }

    /// Drops every pending position (after they were fed, or when the turn ends without feeding them).
    public mutating func clearPending() { pending = [] }
    mutating func setPending(_ s: [PromptSegment]) { pending = s }

    /// A user turn; `encoded[i]` holds the embeddings of `content[i]` when it is audio.
    public mutating func userTurn(_ content: [UserContent], encoded: [AudioEmbeddings?]) {
        let t = tokenizer
        if turns > 0 { text(ChatFormat.tokenize([ChatFormat.turnEnd], t)) }
        turns += 1
        text(ChatFormat.tokenize([ChatFormat.turnStart("user")], t))
        for (c, e) in zip(content, encoded) {
            switch c {
            case .text(let s): text(t.encode(s))
            case .audio: audio(e!)
            }
        }
        text(ChatFormat.tokenize([ChatFormat.turnEnd, ChatFormat.turnStart("assistant")], t))
    }

    /// The input embeddings of every pending position (text rows, audio rows, frame sums), in order.
    public func pendingEmbeddings(_ model: LFMModel) -> [Float] {
        let bb = model.backbone, h = bb.hidden
        var emb = [Float](repeating: 0, count: pendingCount * h)
        emb.withUnsafeMutableBufferPointer { e in
            var row = 0
            for p in pending {
                switch p {
                case .tokens(let ids):
                    for id in ids { bb.embedding(id, into: e.baseAddress! + row * h); row += 1 }
                case .embeddings(let a):
                    a.values.withUnsafeBufferPointer {
                        (e.baseAddress! + row * h).update(from: $0.baseAddress!, count: a.count * h)
                    }
                    row += a.count
                case .frame(let codes):
                    model.audioHead!.frameEmbedding(codes, into: e.baseAddress! + row * h)
                    row += 1
                }
            }
        }
        return emb
    }
}

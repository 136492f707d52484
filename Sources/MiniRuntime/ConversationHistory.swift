import Foundation

/// Additions for servers: a prefix cache and histories that arrive with each request.
extension Conversation {
    /// Runs the positions the conversation holds but has not computed yet (a new conversation's system prompt and
    /// chat template) through the backbone now, so that the next turn's prefill holds only its own positions.
    public func prefill() throws {
        try state.withLock { s in _ = try s.prefill(model) }
    }

    /// Adds a past exchange without generating: a user turn (text and audio) and the assistant's text answer, as
    /// the history would hold them had the turn been generated here. The backbone sees them with the next turn.
    public func appendExchange(user content: [UserContent], assistant text: String) throws {
        try state.withLock { s in
            var encoded: [AudioEmbeddings?] = []
            var positions = 0
            for c in content {
                guard case .audio(let clip) = c else { encoded.append(nil); continue }
                guard let enc = model.audioEncoder else {
                    throw RuntimeError.badInput(
                        """
                        \(model.bundle.gguf.path): the bundle has no audio encoder (conformer); audio input is not \
                        possible
                        """
                    )
                }
                let e = try enc.embed(clip, trace: s.trace)
                positions += e.count
                encoded.append(e)
            }
            let ids = model.tokenizer.encode(text)
            let needed = s.backbone.position + s.prompt.pendingCount + positions + ids.count + 8
            let limit = model.backbone.contextLimit
            if needed > limit { throw RuntimeError.contextOverflow(limit: limit, needed: needed) }
            s.prompt.userTurn(content, encoded: encoded)
            s.prompt.text(ids)
        }
    }

    /// Cuts the last answer back to its first `frames` audio frames (what a listener heard before interrupting):
    /// the positions after the last of them are forgotten — text and frames, so that the history holds no text
    /// the listener did not hear (0 frames: the whole answer) — and the caches are rewound to the start of
    /// the answer and the kept part is computed again now, so the next turn continues from exactly that history.
    /// Returns the frames kept. Waits for a running turn to end.
    @discardableResult
    public func truncateAnswer(keepingFrames frames: Int) throws -> Int {
        precondition(frames >= 0)
        return try state.withLock { s in
            guard let start = s.answerStart else {
                throw RuntimeError.badInput("the conversation has no answer to truncate")
            }
            let positions = s.prompt.positions
            var kept = 0, cut = start.positions
            for i in start.positions..<positions.count where kept < frames {
                guard case .audioOut = positions[i] else { continue }
                kept += 1
                cut = i + 1
            }
            if kept < frames { return kept }  // every frame was heard: nothing to cut
            s.backbone.stack.rewind(to: start.mark)
            s.prompt.truncate(to: cut, refeedFrom: start.positions)
            _ = try s.prefill(model)
            return kept
        }
    }
}

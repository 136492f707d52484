import Foundation
import Formats
import Synchronization
@_spi(Tools) import MiniRuntime

/// Next-token agreement of a candidate bundle (e.g. q4_0) against a baseline (f32) on the same prompts:
/// the baseline generates greedily; the candidate is teacher-forced on the baseline's tokens; at every step the
/// two next-token distributions are compared.
public enum NextTokenComparison {
    public struct Result: Sendable, Codable {
        public var steps = 0
        public var top1Agreement = 0
        public var sumKL = 0.0
        public var maxKL = 0.0
        public var meanKL: Double { steps > 0 ? sumKL / Double(steps) : 0 }
        public var top1Rate: Double { steps > 0 ? Double(top1Agreement) / Double(steps) : 0 }
    }

    static func logSoftmax(_ x: [Float]) -> [Double] {
        let m = Double(x.max() ?? 0)
        let lse = m + log(x.reduce(0.0) { $0 + exp(Double($1) - m) })
        return x.map { Double($0) - lse }
    }

    /// KL(p ‖ q) of two logit vectors (natural log).
    public static func kl(_ p: [Float], _ q: [Float]) -> Double {
        let lp = logSoftmax(p), lq = logSoftmax(q)
        var s = 0.0
        for i in lp.indices { let pi = exp(lp[i]); if pi > 0 { s += pi * (lp[i] - lq[i]) } }
        return max(s, 0)
    }

    public static func run(
        baseline: LFMModel, candidate: LFMModel, system: String?, prompts: [String], steps: Int
    ) throws -> Result {
        var r = Result()
        for prompt in prompts {
            let sb = Conversation(model: baseline, system: system)
            let seen = TraceRecorder()
            sb.setTrace(seen.trace)
            var tokens: [Int] = []
            _ = try sb.generate(user: prompt, maxTokens: steps, sampling: .greedy) { ev in
                if case .text(let id, _) = ev { tokens.append(id) }
            }
            let refLogits = seen.values("text.logits")
            // candidate, teacher-forced
            let candLogits = try teacherForced(candidate, system: system, user: prompt, tokens: tokens)
            for (a, b) in zip(refLogits, candLogits) {
                let k = kl(a, b)
                r.sumKL += k; r.maxKL = max(r.maxKL, k); r.steps += 1
                if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { r.top1Agreement += 1 }
            }
        }
        return r
    }

    /// Prefills a first user turn and then feeds `tokens` one by one (teacher forcing): the logits before each.
    static func teacherForced(_ model: LFMModel, system: String?, user text: String, tokens: [Int]) throws -> [[Float]]
    {
        let bb = model.backbone
        var (_, st, hidden) = try prefillFirstTurn(model, system: system, user: text)
        var out: [[Float]] = []
        for (n, id) in tokens.enumerated() {
            out.append(bb.logits(hidden))
            if n == tokens.count - 1 { break }
            hidden = try bb.forward(tokens: [id], state: st)
        }
        return out
    }

    /// A first user turn of text prefilled: its positions, the backbone state and the hidden state after it.
    static func prefillFirstTurn(
        _ model: LFMModel, system: String?, user text: String
    ) throws -> (
        [Position], LFM2Backbone.State, [Float]
    ) {
        let bb = model.backbone
        var prompt = PromptBuilder(tokenizer: model.tokenizer, system: system)
        prompt.userTurn([.text(text)], encoded: [nil])
        let st = bb.makeState()
        let emb = prompt.pendingEmbeddings(model)
        let hidden = try emb.withUnsafeBufferPointer {
            try bb.step(.init(embeddings: $0.baseAddress!, count: prompt.pendingCount), state: st)
        }
        return (prompt.positions, st, hidden)
    }
}

/// Collects the events of a trace (thread-safe), by name.
public final class TraceRecorder: Sendable {
    private let events = Mutex<[TraceEvent]>([])
    public init() {}
    public var trace: Trace { { e in self.events.withLock { $0.append(e) } } }
    /// Every recorded event's values with this name, in order.
    public func values(_ name: String) -> [[Float]] { events.withLock { $0.filter { $0.name == name }.map(\.values) } }
    public func all() -> [TraceEvent] { events.withLock { $0 } }
    public func clear() { events.withLock { $0 = [] } }
}

/// Agreement of a candidate's audio head with a baseline's, per codebook: the baseline answers each sentence
/// greedily as `task` runs it (its system prompt and mode, codes only: interleaved chat gives frames on a fixed
/// schedule, TTS once the model starts speaking); both models are then teacher-forced on
/// the baseline's positions, and for every generated frame the candidate's argmax for codebook k (given the
/// baseline's codes for codebooks < k, Depthformer.frameLogits) is compared with the baseline's code k, and the two
/// distributions by KL(baseline ‖ candidate). The end-of-audio frame counts for codebook 0 only.
public enum AudioHeadComparison {
    public struct Result: Sendable, Codable {
        public var frames = 0
        /// Per codebook: frames compared, frames whose argmax agreed, summed KL.
        public var steps: [Int]
        public var top1Agreement: [Int]
        public var sumKL: [Double]
        init(codebooks: Int) {
            steps = Array(repeating: 0, count: codebooks); top1Agreement = steps
            sumKL = Array(repeating: 0, count: codebooks)
        }
        public var top1Rate: [Double] { zip(top1Agreement, steps).map { $1 > 0 ? Double($0) / Double($1) : 0 } }
        public var meanKL: [Double] { zip(sumKL, steps).map { $1 > 0 ? $0 / Double($1) : 0 } }
    }

    public static func run(
        baseline: LFMModel, candidate: LFMModel, sentences: [String], task: TaskPreset = .chat, steps: Int
    ) throws -> Result {
        guard let head = baseline.audioHead, let other = candidate.audioHead, head.codebooks == other.codebooks else {
            throw RuntimeError.badInput(
                "audio-head comparison: both bundles need a depthformer with the same codebooks")
        }
        var r = Result(codebooks: head.codebooks)
        for s in sentences {
            let conv = Conversation(model: baseline, task: task)
            _ = try conv.generate(
                user: [.text(s)], mode: task.mode, maxTokens: steps, sampling: .greedy, audioSampling: .greedy,
                audio: .codes
            ) { _ in }
            let history = conv.history, frames = conv.frames
            let want = try teacherForced(baseline, system: task.system, user: s, history: history, frames: frames)
            let got = try teacherForced(candidate, system: task.system, user: s, history: history, frames: frames)
            for (i, (a, b)) in zip(want, got).enumerated() {
                r.frames += 1
                let eoa = frames[i].allSatisfy { $0 == baseline.tokens.endOfAudio }
                for k in 0..<(eoa ? 1 : a.count) {
                    r.steps[k] += 1
                    if b[k].withUnsafeBufferPointer({ Sampler.argmax($0) }) == frames[i][k] { r.top1Agreement[k] += 1 }
                    r.sumKL[k] += NextTokenComparison.kl(a[k], b[k])
                }
            }
        }
        return r
    }

    /// Each generated frame's per-codebook logits with the conversation's `history` fed as it was generated.
    static func teacherForced(
        _ model: LFMModel, system: String?, user text: String, history: [Position], frames: [[Int]]
    ) throws -> [[[Float]]] {
        let bb = model.backbone, head = model.audioHead!
        var (positions, st, hidden) = try NextTokenComparison.prefillFirstTurn(model, system: system, user: text)
        let n = positions.count
        guard history.count >= n, Array(history.prefix(n)) == positions else {
            throw RuntimeError.badInput("audio-head comparison: the two bundles tokenize the prompt differently")
        }
        let hs = head.makeState()
        var out: [[[Float]]] = []
        var fe = [Float](repeating: 0, count: bb.hidden)
        for p in history[n...] {
            switch p {
            case .text(let id):
                hidden = try bb.forward(tokens: [id], state: st)
            case .audioOut(let i):
                out.append(
                    hidden.withUnsafeBufferPointer { head.frameLogits($0.baseAddress!, forced: frames[i], state: hs) })
                fe.withUnsafeMutableBufferPointer { head.frameEmbedding(frames[i], into: $0.baseAddress!) }
                hidden = try fe.withUnsafeBufferPointer {
                    try bb.step(.init(embeddings: $0.baseAddress!, count: 1), state: st)
                }
            case .audioIn:
                throw RuntimeError.badInput("audio-head comparison: audio input in an answer")
            }
        }
        return out
    }
}

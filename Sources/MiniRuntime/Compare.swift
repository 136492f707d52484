import Foundation

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
            let sb = ChatSession(model: baseline, system: system)
            var refLogits: [[Float]] = []
            sb.logitsObserver = { refLogits.append($0) }
            var tokens: [Int] = []
            _ = try sb.generate(user: prompt, maxTokens: steps, sampling: .greedy) { ev in
                if case .text(let id, _) = ev { tokens.append(id) }
            }
            // candidate, teacher-forced
            let sc = ChatSession(model: candidate, system: system)
            var candLogits: [[Float]] = []
            sc.logitsObserver = { candLogits.append($0) }
            _ = try sc.generateForced(user: prompt, tokens: tokens)
            for (a, b) in zip(refLogits, candLogits) {
                let k = kl(a, b)
                r.sumKL += k; r.maxKL = max(r.maxKL, k); r.steps += 1
                if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { r.top1Agreement += 1 }
            }
        }
        return r
    }
}

extension ChatSession {
    /// Prefills a user turn and then feeds `tokens` one by one (teacher forcing), reporting logits before each.
    func generateForced(user text: String, tokens: [Int]) throws {
        let t = model.tokenizer, bb = model.backbone
        appendTokens(ChatFormat.tokenize(ChatFormat.userTurn(text), t))
        let h = bb.hidden
        var hidden = [Float](repeating: 0, count: h)
        var logits = [Float](repeating: 0, count: bb.vocab)
        try prefill(last: &hidden)
        for (n, id) in tokens.enumerated() {
            bb.logits(hidden, into: &logits)
            logitsObserver?(logits)
            if n == tokens.count - 1 { break }
            try bb.forward(tokens: [id], last: &hidden)
        }
    }
}

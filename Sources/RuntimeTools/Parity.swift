import Foundation
import Formats
@_spi(Tools) import MiniRuntime

/// One line of a parity report.
public struct ParityRow: Sendable, Codable {
    public var stage: String
    public var shape: [Int]
    public var maxAbs: Double = 0
    public var relErr: Double = 0
    public var cosine: Double = 1
    /// Streams: decisions compared, decisions reproduced (argmax equal to the reference's), the first divergence and
    /// the reference's top-2 margin there; quantized bundles also get top-1 agreement and mean KL (text steps).
    public var steps: Int?
    public var reproduced: Int?
    public var firstDivergence: Int?
    public var marginAtDivergence: Double?
    public var nearTie: Bool?
    public var top1Agreement: Double?
    public var meanKL: Double?
    public var tolerance: String = ""
    public var ok = true
    enum CodingKeys: String, CodingKey {
        case stage, shape, maxAbs = "max_abs", relErr = "rel_err", cosine, steps, reproduced
        case firstDivergence = "first_divergence", marginAtDivergence = "margin_at_divergence", nearTie = "near_tie"
        case top1Agreement = "top1_agreement", meanKL = "mean_kl", tolerance, ok
    }
}

public struct ParityReport: Sendable, Codable {
    public var bundle: String
    public var reference: String
    public var bundleType: String
    public var mode: String
    public var rows: [ParityRow] = []
    public var ok: Bool { rows.allSatisfy(\.ok) }
    public var firstFailure: String? { rows.first { !$0.ok }?.stage }
}

/// Replays a `scripts/reference/dump.py` dump through the runtime, stage by stage, with each stage fed by the
/// runtime's own previous stage (so errors accumulate as they would in use) and the generation teacher-forced on
/// the reference's stream (so every step stays comparable after a divergence).
///
/// Tolerances (by the type of the backbone's matrices): f32 — every tensor within 1e-3 of the reference relative to
/// its largest magnitude, and every stream decision reproduced unless the reference's top-2 margin there is within 4×
/// the logit error (a near-tie, reported); f16/bf16 — cosine ≥ 0.999; q8_0 — cosine ≥ 0.95; q4_0 — cosine ≥
/// 0.6 (these catch gross errors — a wrong layout gives cosine ≈ 0 — and stay loose because random-weight
/// checkpoints amplify quantization noise); streams of non-f32 bundles are reported (agreement, KL), not gated. The
/// audio front end (resampling, log-mel) is computed in float whatever the bundle, so it is always held to 1e-4.
public enum Parity {
    public static func run(model: LFMModel, dump path: String, bundlePath: String) throws -> ParityReport {
        let run = try ParityRun(model: model, dump: path, bundlePath: bundlePath)
        let heard = try run.audioInput()
        guard let prompt = try run.promptAssembly(heard: heard) else { return run.report }
        let last = try run.backbone(prompt)
        try run.generation(from: last)
        try run.decoders()
        return run.report
    }

    /// KL(softmax(p) ‖ softmax(q)) of two logit vectors.
    static func kl(_ p: [Float], _ q: [Float]) -> Double {
        let mp = Double(p.max() ?? 0), mq = Double(q.max() ?? 0)
        var zp = 0.0, zq = 0.0
        for i in p.indices { zp += exp(Double(p[i]) - mp); zq += exp(Double(q[i]) - mq) }
        var s = 0.0
        for i in p.indices {
            let lp = Double(p[i]) - mp - log(zp), lq = Double(q[i]) - mq - log(zq)
            s += exp(lp) * (lp - lq)
        }
        return max(0, s)
    }
}

/// One replay of a dump, stage by stage; each stage appends its rows to `report`.
final class ParityRun {
    let model: LFMModel
    let ref: SafetensorsFile
    let path: String
    let mode: String, system: String?, prompt: String?
    /// The class of the backbone's matrix type, which sets the tolerances: f32, f16 (f16/bf16), q8_0, q4_0.
    let cls: String
    var report: ParityReport
    let state: LFM2Backbone.State

    init(model: LFMModel, dump path: String, bundlePath: String) throws {
        self.model = model; self.path = path
        ref = try SafetensorsFile(path: path)
        let manifestPath = (path as NSString).deletingPathExtension + ".json"
        guard let md = FileManager.default.contents(atPath: manifestPath),
            let manifest = try? JSONSerialization.jsonObject(with: md) as? [String: Any]
        else {
            throw RuntimeError.badInput(
                """
                \(manifestPath): the dump's manifest is missing or not JSON (dump.py writes it beside the \
                .safetensors)
                """
            )
        }
        mode = manifest["mode"] as? String ?? "text"
        system = manifest["system"] as? String
        prompt = manifest["prompt"] as? String
        let mtype =
            model.bundle.gguf.tensor(BundleNames.backbonePrefix + "layers.0.feed_forward.w1.weight")?.type ?? .f32
        cls = mtype == .f32 ? "f32" : mtype == .f16 || mtype == .bf16 ? "f16" : mtype == .q8_0 ? "q8_0" : "q4_0"
        report = ParityReport(bundle: bundlePath, reference: path, bundleType: mtype.name, mode: mode)
        state = model.backbone.makeState()
    }

    func f(_ name: String) throws -> [Float]? {
        guard let t = ref.tensors[name] else { return nil }
        guard t.dtype == .f32 else { throw RuntimeError.badInput("\(path): \(name) is \(t.dtype), expected F32") }
        return Array(t.bytes.bindMemory(to: Float.self))
    }
    func ints(_ name: String) throws -> [Int]? {
        guard let t = ref.tensors[name] else { return nil }
        switch t.dtype {
        case .i32: return t.bytes.bindMemory(to: Int32.self).map { Int($0) }
        case .i64: return t.bytes.bindMemory(to: Int64.self).map { Int($0) }
        default: throw RuntimeError.badInput("\(path): \(name) is \(t.dtype), expected an integer type")
        }
    }
    func shape(_ name: String) -> [Int] { ref.tensors[name]?.shape ?? [] }

    /// Appends a row comparing `got` with `want` under the bundle class's tolerance (`strict`: 1e-4 relative).
    func compare(_ stage: String, _ got: [Float], _ want: [Float], shape s: [Int], strict: Bool = false) {
        var row = ParityRow(stage: stage, shape: s)
        guard got.count == want.count else {
            row.ok = false; row.tolerance = "shape: runtime has \(got.count) values, reference \(want.count)"
            report.rows.append(row); return
        }
        var m = 0.0, r = 0.0, dot = 0.0, na = 0.0, nb = 0.0
        for i in got.indices {
            let a = Double(got[i]), b = Double(want[i])
            m = max(m, abs(a - b)); r = max(r, abs(b)); dot += a * b; na += a * a; nb += b * b
        }
        row.maxAbs = m; row.relErr = m / max(r, 1e-30)
        row.cosine = na == 0 && nb == 0 ? 1 : dot / max((na * nb).squareRoot(), 1e-300)
        if strict {
            row.tolerance = "rel ≤ 1e-4"; row.ok = row.relErr <= 1e-4
        } else {
            switch cls {
            case "f32": row.tolerance = "rel ≤ 1e-3"; row.ok = row.relErr <= 1e-3
            case "f16": row.tolerance = "cos ≥ 0.999"; row.ok = row.cosine >= 0.999
            case "q8_0": row.tolerance = "cos ≥ 0.95"; row.ok = row.cosine >= 0.95
            default: row.tolerance = "cos ≥ 0.6"; row.ok = row.cosine >= 0.6
            }
        }
        if !row.cosine.isFinite || !row.relErr.isFinite { row.ok = false }
        report.rows.append(row)
    }

    /// The audio front end and encoder on the dump's input clip: (clip, adapter output), or nil without audio.
    func audioInput() throws -> (AudioClip, [Float])? {
        guard let wave = try f("input.wave"), let rate = try ints("input.sample_rate")?.first else { return nil }
        guard let enc = model.audioEncoder else {
            throw RuntimeError.badInput(
                "\(report.bundle): the dump has audio input but the bundle has no audio encoder")
        }
        let clip = AudioClip(samples: wave, sampleRate: rate, channels: 1)
        let x = try enc.resample(clip)
        if let w = try f("audio.resampled") {
            compare("audio.resampled", x, w, shape: shape("audio.resampled"), strict: true)
        }
        let mel = enc.melFeatures(x)
        if let w = try f("audio.mel") {
            compare("audio.mel", mel.flatMap { $0 }, w, shape: shape("audio.mel"), strict: true)
        }
        let conf = enc.conformer(mel: mel)
        if let w = try f("audio.conformer_out") {
            compare("audio.conformer_out", conf, w, shape: shape("audio.conformer_out"))
        }
        let ad = enc.adapt(conf)
        if let w = try f("audio.adapter_out") { compare("audio.adapter_out", ad, w, shape: shape("audio.adapter_out")) }
        return (clip, ad)
    }

    /// The prompt as the runtime builds it (ids and modality flags must be identical); nil when they differ.
    func promptAssembly(heard: (AudioClip, [Float])?) throws -> PromptBuilder? {
        let h = model.backbone.hidden
        var builder = PromptBuilder(tokenizer: model.tokenizer, system: system)
        var content: [UserContent] = [], encoded: [AudioEmbeddings?] = []
        if let (clip, ad) = heard {
            content.append(.audio(clip))
            encoded.append(AudioEmbeddings(values: ad, count: ad.count / h, hidden: h, stats: AudioEncodeStats()))
        }
        if let p = prompt, mode != "asr" { content.append(.text(p)); encoded.append(nil) }
        builder.userTurn(content, encoded: encoded)
        let ids = builder.positions.compactMap(\.textId), flags = builder.positions.map(\.modality.rawValue)
        var row = ParityRow(stage: "prompt.ids", shape: [flags.count])
        let refIds = try ints("prompt.text_ids") ?? [], refFlags = try ints("prompt.modality_flag") ?? []
        row.ok = refIds == ids && refFlags == flags
        row.tolerance = "identical"
        if !row.ok { row.relErr = 1 }
        report.rows.append(row)
        guard row.ok else { return nil }
        if let w = try f("prompt.in_emb") {
            compare("prompt.in_emb", builder.pendingEmbeddings(model), w, shape: shape("prompt.in_emb"))
        }
        return builder
    }

    /// Every backbone layer over the prompt (through the trace); the final hidden state.
    func backbone(_ builder: PromptBuilder) throws -> [Float] {
        let bb = model.backbone, h = bb.hidden, L = builder.pendingCount
        let recorder = TraceRecorder()
        state.trace = recorder.trace
        let emb = builder.pendingEmbeddings(model)
        let last = try emb.withUnsafeBufferPointer {
            try bb.step(.init(embeddings: $0.baseAddress!, count: L), state: state)
        }
        state.trace = nil
        var layers = [[Float]](repeating: [], count: bb.config.numHiddenLayers + 1)
        for e in recorder.all() where e.name == "lfm.hidden" { layers[e.layer!] += e.values }
        if let hs = try f("lfm.hidden_states") {
            let per = L * h
            guard hs.count == per * layers.count else {
                throw RuntimeError.badInput(
                    "\(path): lfm.hidden_states has \(hs.count) values, expected \(per * layers.count)")
            }
            for i in 1..<layers.count {
                compare(
                    i == layers.count - 1 ? "lfm.final_norm" : "lfm.layer.\(i - 1)", layers[i],
                    Array(hs[(i * per)..<((i + 1) * per)]), shape: [L, h])
            }
        }
        return last
    }

    /// A stream's running comparison: decisions reproduced, the first divergence, its margin and whether every
    /// divergence is a near-tie.
    struct StreamTally {
        var steps = 0, reproduced = 0
        var first: Int? = nil
        var firstMargin = 0.0
        var tie = true
        var got: [Float] = []
        mutating func diverged(at s: Int, margin: Float, error: Float) {
            if first == nil {
                first = s; firstMargin = Double(margin); tie = margin <= 4 * error
            } else if margin > 4 * error {
                tie = false
            }
        }
    }

    /// Generation teacher-forced on the reference's stream: text logits and depthformer logits per step.
    func generation(from start: [Float]) throws {
        let bb = model.backbone, h = bb.hidden
        let modality = try ints("gen.step_modality") ?? []
        let tokens = try ints("gen.text_tokens") ?? []
        let textLogits = try f("gen.text_logits") ?? []
        let textMargins = try f("gen.text_margins") ?? []
        let framesFlat = try ints("gen.audio_frames") ?? []
        let depthLogits = try f("gen.depth_logits") ?? []
        let depthMargins = try f("gen.depth_margins") ?? []
        let V = bb.vocab, AV = LFM2AudioConfig.audioVocab
        var text = StreamTally(), depth = StreamTally()
        var klSum = 0.0
        var last = start
        var fe = [Float](repeating: 0, count: h)
        let headState = model.audioHead?.makeState()
        for (s, m) in modality.enumerated() {
            if m == Modality.text.rawValue {
                guard text.steps < tokens.count else { break }
                let t = text.steps
                let logits = bb.logits(last)
                text.got += logits
                let want = Array(textLogits[(t * V)..<((t + 1) * V)])
                let am = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                var err: Float = 0
                for i in 0..<V { err = max(err, abs(logits[i] - want[i])) }
                if am == tokens[t] {
                    text.reproduced += 1
                } else {
                    text.diverged(at: s, margin: textMargins[t], error: err)
                }
                klSum += Parity.kl(want, logits)
                text.steps += 1
                if s < modality.count - 1 { last = try bb.forward(tokens: [tokens[t]], state: state) }
            } else {
                guard let head = model.audioHead, let headState, (depth.steps + 1) * 8 <= framesFlat.count else {
                    break
                }
                let fStep = depth.steps
                let frame = Array(framesFlat[(fStep * 8)..<((fStep + 1) * 8)])
                let isEOA = frame.allSatisfy { $0 == model.tokens.endOfAudio }
                let fl = last.withUnsafeBufferPointer {
                    head.frameLogits($0.baseAddress!, forced: frame, state: headState)
                }
                let nDepth = depthLogits.count / (8 * AV)
                var ok = true
                for k in 0..<(isEOA ? 1 : 8) where fl[k].withUnsafeBufferPointer({ Sampler.argmax($0) }) != frame[k] {
                    ok = false
                }
                if fStep < nDepth && !isEOA {
                    let want = Array(depthLogits[(fStep * 8 * AV)..<((fStep + 1) * 8 * AV)])
                    let got = fl.flatMap { $0 }
                    depth.got += got
                    if !ok {
                        var err: Float = 0
                        for i in 0..<want.count { err = max(err, abs(got[i] - want[i])) }
                        let margin = depthMargins.isEmpty ? 0 : depthMargins[(fStep * 8)..<((fStep + 1) * 8)].min()!
                        depth.diverged(at: s, margin: margin, error: err)
                    }
                } else if !ok && depth.first == nil {
                    depth.first = s; depth.tie = false
                }
                if ok { depth.reproduced += 1 }
                depth.steps += 1
                if s < modality.count - 1 {
                    fe.withUnsafeMutableBufferPointer { head.frameEmbedding(frame, into: $0.baseAddress!) }
                    last = try fe.withUnsafeBufferPointer {
                        try bb.step(.init(embeddings: $0.baseAddress!, count: 1), state: state)
                    }
                }
            }
        }
        if !tokens.isEmpty {
            var row = streamRow(
                "gen.text_logits", text, want: Array(textLogits.prefix(text.got.count)), shape: [text.steps, V],
                what: "step")
            if cls != "f32" {
                row.top1Agreement = Double(text.reproduced) / Double(max(text.steps, 1))
                row.meanKL = klSum / Double(max(text.steps, 1))
            }
            report.rows.append(row)
        }
        if depth.steps > 0 {
            var row = streamRow(
                "gen.depth_logits", depth, want: Array(depthLogits.prefix(depth.got.count)),
                shape: [depth.got.count / (8 * AV), 8, AV], what: "frame")
            row.stage = "gen.audio_frames"
            report.rows.append(row)
        }
    }

    /// The row of a stream: the logits' comparison plus the decisions; gated on f32, reported otherwise.
    func streamRow(_ stage: String, _ t: StreamTally, want: [Float], shape: [Int], what: String) -> ParityRow {
        let before = report.rows.count
        compare(stage, t.got, want, shape: shape)
        var row = report.rows.remove(at: before)
        row.steps = t.steps; row.reproduced = t.reproduced; row.firstDivergence = t.first
        if t.first != nil { row.marginAtDivergence = t.firstMargin; row.nearTie = t.tie }
        if cls != "f32" {
            row.ok = row.cosine.isFinite  // reported, not gated
        } else if t.first != nil && !t.tie {
            row.ok = false
        }
        row.tolerance += cls == "f32" ? "; every \(what) reproduced or a near-tie" : "; stream reported"
        return row
    }

    /// Both decoders on the reference's frames.
    func decoders() throws {
        guard let codes = try ints("decode.codes") else { return }
        let T = codes.count / 8
        let frames = (0..<T).map { f in (0..<8).map { codes[$0 * T + f] } }
        if let want = try f("decode.mimi_wave"), let mimi = model.mimi {
            let st = mimi.makeState()
            var y: [Float] = []
            for fr in frames { y += try mimi.step(fr, state: st) }
            compare("decode.mimi_wave", y, want, shape: [y.count])
        }
        if let want = try f("decode.detok_wave"), let det = model.detokenizer {
            let st = det.makeState()
            var y: [Float] = []
            for fr in frames { y += try det.step(fr, state: st) }
            y += det.flush(state: st)
            compare("decode.detok_wave", y, want, shape: [y.count])
        }
    }
}

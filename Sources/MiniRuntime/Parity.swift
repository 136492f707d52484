import Foundation
import Formats

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
/// its largest magnitude, and every stream decision reproduced unless the reference's top-2 margin there is within
/// 4× the logit error (a near-tie, reported); f16/bf16 — cosine ≥ 0.999; q8_0 — cosine ≥ 0.95; q4_0 — cosine ≥ 0.6
/// (these catch gross errors — a wrong layout gives cosine ≈ 0 — and stay loose because random-weight checkpoints
/// amplify quantization noise); streams of non-f32 bundles are reported (agreement, KL), not gated. The audio front end (resampling, log-mel) is
/// computed in float whatever the bundle, so it is always held to 1e-4.
public enum Parity {
    public static func run(model: LFMModel, dump path: String, bundlePath: String) throws -> ParityReport {
        let ref = try SafetensorsFile(path: path)
        let manifestPath = (path as NSString).deletingPathExtension + ".json"
        guard let md = FileManager.default.contents(atPath: manifestPath),
            let manifest = try? JSONSerialization.jsonObject(with: md) as? [String: Any]
        else {
            throw RuntimeError.badInput(
                "\(manifestPath): the dump's manifest is missing or not JSON (dump.py writes it beside the .safetensors)"
            )
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
        let mode = manifest["mode"] as? String ?? "text"
        let system = manifest["system"] as? String
        let prompt = manifest["prompt"] as? String
        let mtype = model.bundle.gguf.tensor("lfm.layers.0.feed_forward.w1.weight")?.type ?? .f32
        let cls: String =
            mtype == .f32 ? "f32" : mtype == .f16 || mtype == .bf16 ? "f16" : mtype == .q8_0 ? "q8_0" : "q4_0"
        var report = ParityReport(bundle: bundlePath, reference: path, bundleType: mtype.name, mode: mode)

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

        // --- audio in
        var audioEmb: [Float]? = nil
        var heard: AudioClip? = nil
        if let wave = try f("input.wave"), let rate = try ints("input.sample_rate")?.first {
            guard let enc = model.audioEncoder else {
                throw RuntimeError.badInput(
                    "\(bundlePath): the dump has audio input but the bundle has no audio encoder")
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
            if let w = try f("audio.adapter_out") {
                compare("audio.adapter_out", ad, w, shape: shape("audio.adapter_out"))
            }
            audioEmb = ad
            heard = clip
        }

        // --- prompt assembly, by the session itself
        let bb = model.backbone, h = bb.hidden
        let session = ChatSession(model: model, system: system)
        var content: [UserContent] = [], encoded: [AudioEmbeddings?] = []
        if let clip = heard, let ad = audioEmb {
            content.append(.audio(clip));
            encoded.append(AudioEmbeddings(values: ad, count: ad.count / h, hidden: h, stats: AudioEncodeStats()))
        }
        if let p = prompt, mode != "asr" { content.append(.text(p)); encoded.append(nil) }
        session.appendUserTurn(content, encoded: encoded)
        let ids = session.history.filter { $0 >= 0 }, flags = session.modalities.map(\.rawValue)
        var row = ParityRow(stage: "prompt.ids", shape: [flags.count])
        let refIds = try ints("prompt.text_ids") ?? [], refFlags = try ints("prompt.modality_flag") ?? []
        row.ok = refIds == ids && refFlags == flags
        row.tolerance = "identical"
        if !row.ok { row.relErr = 1 }
        report.rows.append(row)
        guard row.ok else { return report }
        let L = flags.count
        let emb = session.pendingEmbeddings()
        if let w = try f("prompt.in_emb") { compare("prompt.in_emb", emb, w, shape: shape("prompt.in_emb")) }

        // --- backbone, every layer
        bb.reset()
        var layers = [[Float]](repeating: [], count: bb.config.numHiddenLayers + 1)
        var last = [Float](repeating: 0, count: h)
        try emb.withUnsafeBufferPointer { e in
            try last.withUnsafeMutableBufferPointer { l in
                try bb.forward(e.baseAddress!, count: L, last: l.baseAddress!) { i, p, n in
                    layers[i] += Array(UnsafeBufferPointer(start: p, count: n * h))
                }
            }
        }
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

        // --- generation, teacher-forced on the reference's stream
        let modality = try ints("gen.step_modality") ?? []
        let tokens = try ints("gen.text_tokens") ?? []
        let textLogits = try f("gen.text_logits") ?? []
        let textMargins = try f("gen.text_margins") ?? []
        let framesFlat = try ints("gen.audio_frames") ?? []
        let depthLogits = try f("gen.depth_logits") ?? []
        let depthMargins = try f("gen.depth_margins") ?? []
        let V = bb.vocab, AV = LFM2AudioConfig.audioVocab
        var gotText: [Float] = [], gotDepth: [Float] = []
        var tStep = 0, fStep = 0
        var textRepro = 0, frameRepro = 0, textFirst: Int? = nil, frameFirst: Int? = nil
        var textFirstMargin = 0.0, frameFirstMargin = 0.0, textTie = true, frameTie = true
        var klSum = 0.0, agree = 0
        var logits = [Float](repeating: 0, count: V)
        var fe = [Float](repeating: 0, count: h)
        for (s, m) in modality.enumerated() {
            if m == 1 {
                guard tStep < tokens.count else { break }
                bb.logits(last, into: &logits)
                gotText += logits
                let want = Array(textLogits[(tStep * V)..<((tStep + 1) * V)])
                let am = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                var err: Float = 0
                for i in 0..<V { err = max(err, abs(logits[i] - want[i])) }
                if am == tokens[tStep] {
                    textRepro += 1; agree += 1
                } else if textFirst == nil {
                    textFirst = s; textFirstMargin = Double(textMargins[tStep])
                    textTie = textMargins[tStep] <= 4 * err
                } else if textMargins[tStep] > 4 * err {
                    textTie = false
                }
                klSum += kl(want, logits)
                let id = tokens[tStep]; tStep += 1
                if s < modality.count - 1 { try bb.forward(tokens: [id], last: &last) }
            } else {
                guard let head = model.audioHead, (fStep + 1) * 8 <= framesFlat.count else { break }
                let frame = Array(framesFlat[(fStep * 8)..<((fStep + 1) * 8)])
                let isEOA = frame.allSatisfy { $0 == AudioHead.eoa }
                let fl = last.withUnsafeBufferPointer { head.frameLogits($0.baseAddress!, forced: frame) }
                let nDepth = depthLogits.count / (8 * AV)
                var ok = true
                for k in 0..<(isEOA ? 1 : 8) {
                    let am = fl[k].withUnsafeBufferPointer { Sampler.argmax($0) }
                    if am != frame[k] { ok = false }
                }
                if fStep < nDepth && !isEOA {
                    let want = Array(depthLogits[(fStep * 8 * AV)..<((fStep + 1) * 8 * AV)])
                    let got = fl.flatMap { $0 }
                    gotDepth += got
                    if !ok {
                        var err: Float = 0
                        for i in 0..<want.count { err = max(err, abs(got[i] - want[i])) }
                        let margin = depthMargins.isEmpty ? 0 : depthMargins[(fStep * 8)..<((fStep + 1) * 8)].min()!
                        if frameFirst == nil {
                            frameFirst = s; frameFirstMargin = Double(margin); frameTie = margin <= 4 * err
                        } else if margin > 4 * err {
                            frameTie = false
                        }
                    }
                } else if !ok {
                    if frameFirst == nil { frameFirst = s; frameTie = false }
                }
                if ok { frameRepro += 1 }
                fStep += 1
                if s < modality.count - 1 {
                    fe.withUnsafeMutableBufferPointer { head.frameEmbedding(frame, into: $0.baseAddress!) }
                    try fe.withUnsafeBufferPointer { e in
                        try last.withUnsafeMutableBufferPointer {
                            try bb.forward(e.baseAddress!, count: 1, last: $0.baseAddress!)
                        }
                    }
                }
            }
        }
        if !tokens.isEmpty {
            let before = report.rows.count
            compare("gen.text_logits", gotText, Array(textLogits.prefix(gotText.count)), shape: [tStep, V])
            var textRow = report.rows.remove(at: before)
            textRow.steps = tStep; textRow.reproduced = textRepro; textRow.firstDivergence = textFirst
            if textFirst != nil { textRow.marginAtDivergence = textFirstMargin; textRow.nearTie = textTie }
            if cls != "f32" {
                textRow.top1Agreement = Double(agree) / Double(max(tStep, 1));
                textRow.meanKL = klSum / Double(max(tStep, 1))
                textRow.ok = textRow.cosine.isFinite  // reported, not gated
            } else if textFirst != nil && !textTie {
                textRow.ok = false
            }
            textRow.tolerance += cls == "f32" ? "; every step reproduced or a near-tie" : "; stream reported"
            report.rows.append(textRow)
        }
        if fStep > 0 {
            let before = report.rows.count
            compare(
                "gen.depth_logits", gotDepth, Array(depthLogits.prefix(gotDepth.count)),
                shape: [gotDepth.count / (8 * AV), 8, AV])
            var depthRow = report.rows.remove(at: before)
            depthRow.steps = fStep; depthRow.reproduced = frameRepro; depthRow.firstDivergence = frameFirst
            if frameFirst != nil { depthRow.marginAtDivergence = frameFirstMargin; depthRow.nearTie = frameTie }
            if cls == "f32" && frameFirst != nil && !frameTie { depthRow.ok = false }
            if cls != "f32" { depthRow.ok = depthRow.cosine.isFinite }
            depthRow.stage = "gen.audio_frames"
            depthRow.tolerance += cls == "f32" ? "; every frame reproduced or a near-tie" : "; stream reported"
            report.rows.append(depthRow)
        }

        // --- decoders on the reference's frames
        if let codes = try ints("decode.codes") {
            let T = codes.count / 8
            let frames = (0..<T).map { f in (0..<8).map { codes[$0 * T + f] } }
            if let want = try f("decode.mimi_wave"), let mimi = model.mimi {
                mimi.reset()
                var y: [Float] = []
                for fr in frames { y += try mimi.decode(frame: fr) }
                compare("decode.mimi_wave", y, want, shape: [y.count])
            }
            if let want = try f("decode.detok_wave"), let det = model.detokenizer {
                det.reset()
                var y: [Float] = []
                for fr in frames { y += try det.decode(frame: fr) }
                y += det.flush()
                compare("decode.detok_wave", y, want, shape: [y.count])
            }
        }
        return report
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

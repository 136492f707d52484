import Foundation
import Formats
@_spi(Tools) import MiniRuntime

/// Per-column sums of squared activations of every matrix product, by weight name (`lfm-convert imatrix`):
/// llama.cpp's statistic (tools/imatrix/imatrix.cpp `collect_imatrix`: Σ x_j² over every input row, and the row
/// count), accumulated here in double precision.
@_spi(Tools) public final class ActivationStatistics: ActivationObserver, @unchecked Sendable {
    // @unchecked: every field is guarded by `lock` (products of the speech decoder run on their own thread).
    private let lock = NSLock()
    private var sums: [String: [Double]] = [:]
    private var counts: [String: Int] = [:]
    /// Names to record (nil: all).
    private let accept: (@Sendable (String, Int) -> Bool)?

    /// `accept(name, cols)`: whether a product's weight is recorded.
    public init(accept: (@Sendable (String, Int) -> Bool)? = nil) { self.accept = accept }

    public func observe(matrix: String, x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) {
        if let accept, !accept(matrix, cols) { return }
        lock.lock()
        defer { lock.unlock() }
        var acc = sums[matrix] ?? [Double](repeating: 0, count: cols)
        guard acc.count == cols else { return }  // one name, one width (checked again when the file is written)
        sums[matrix] = nil  // unique buffer: mutate in place
        acc.withUnsafeMutableBufferPointer { a in
            for t in 0..<rows {
                let r = x + t * ld
                for j in 0..<cols {
                    let v = Double(r[j])
                    a[j] += v * v
                }
            }
        }
        sums[matrix] = acc
        counts[matrix, default: 0] += rows
    }

    /// The statistics so far: name → (sums, rows).
    public func snapshot() -> [String: (sums: [Double], count: Int)] {
        lock.lock()
        defer { lock.unlock() }
        var out: [String: (sums: [Double], count: Int)] = [:]
        for (k, v) in sums { out[k] = (v, counts[k] ?? 0) }
        return out
    }

    /// Whether any value seen was not finite (llama.cpp refuses such a matrix).
    public func nonFinite() -> [String] {
        snapshot().filter { !$0.value.sums.allSatisfy(\.isFinite) }.map(\.key).sorted()
    }
}

/// The calibration inputs of `lfm-convert imatrix --calibrate DIR` (docs/format.md §6.2):
/// - `DIR/*.txt`: one text chat prompt per file (the whole file is the user turn, no system prompt);
/// - `DIR/*.wav`, `DIR/*.flac` (and other formats the reader accepts): each file runs twice, as ASR (the ASR system
///   prompt, sequential mode) and as a spoken chat turn (interleaved mode, the reply spoken through the bundle's
///   decoders in turn: Mimi, then the detokenizer, when it has both);
/// - `DIR/tts/*.txt`: every non-empty line is a sentence spoken by TTS (voices in turn, decoders in turn continuing
///   after the chat turns).
public struct CalibrationSet: Sendable {
    public enum Item: Sendable {
        case text(name: String, prompt: String)
        case asr(name: String, path: String)
        case audioChat(name: String, path: String, decoder: Int)
        case tts(name: String, sentence: String, voice: Voice, decoder: Int)
        public var label: String {
            switch self {
            case .text(let n, _): return "text " + n
            case .asr(let n, _): return "asr " + n
            case .audioChat(let n, _, _): return "chat " + n
            case .tts(let n, _, _, _): return "tts " + n
            }
        }
    }
    public var items: [Item]
    public var directory: String

    public static let audioExtensions: Set<String> = ["wav", "flac", "ogg", "opus", "mp3"]

    public init(directory: String) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw RuntimeError.badInput("\(directory): --calibrate needs a directory")
        }
        self.directory = directory
        func files(_ d: String) -> [String] { ((try? fm.contentsOfDirectory(atPath: d)) ?? []).sorted() }
        var items: [Item] = []
        var chats = 0
        for f in files(directory) {
            let path = directory + "/" + f, ext = (f as NSString).pathExtension.lowercased()
            if ext == "txt" {
                let s = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(
                    in: .whitespacesAndNewlines)
                if !s.isEmpty { items.append(.text(name: f, prompt: s)) }
            } else if Self.audioExtensions.contains(ext) {
                items.append(.asr(name: f, path: path))
                items.append(.audioChat(name: f, path: path, decoder: chats))
                chats += 1
            }
        }
        var k = 0
        for f in files(directory + "/tts") where f.lowercased().hasSuffix(".txt") {
            let text = try String(contentsOfFile: directory + "/tts/" + f, encoding: .utf8)
            for (i, line) in text.split(whereSeparator: \.isNewline).enumerated() {
                let s = line.trimmingCharacters(in: .whitespaces)
                guard !s.isEmpty else { continue }
                let voice = Voice.allCases[k % Voice.allCases.count]
                items.append(.tts(name: "\(f):\(i + 1)", sentence: s, voice: voice, decoder: chats + k))
                k += 1
            }
        }
        guard !items.isEmpty else {
            throw RuntimeError.badInput(
                "\(directory): no calibration inputs (*.txt prompts, WAV/FLAC files, tts/*.txt sentences)")
        }
        self.items = items
    }
}

public enum Calibration {
    /// Runs every item of `set` on `model` (greedy text and audio, `maxTokens` steps per turn); `load` reads an
    /// audio file; `progress(done, total, label)` before each item.
    public static func run(
        model: LFMModel, set: CalibrationSet, maxTokens: Int, load: (String) throws -> AudioClip,
        progress: (Int, Int, String) -> Void
    ) throws {
        let decoders: [DecoderKind] =
            (model.mimi != nil ? [DecoderKind.mimi] : []) + (model.detokenizer != nil ? [.detokenizer] : [])
        let canHear = model.audioEncoder != nil, canSpeak = model.audioHead != nil && !decoders.isEmpty
        for (i, item) in set.items.enumerated() {
            progress(i, set.items.count, item.label)
            switch item {
            case .text(_, let prompt):
                _ = try Conversation(model: model).generate(user: prompt, maxTokens: maxTokens, sampling: .greedy) {
                    _ in
                }
            case .asr(_, let path):
                guard canHear else { continue }
                let clip = try load(path)
                _ = try Conversation(model: model, task: .asr).generate(
                    user: [.audio(clip)], mode: .sequential, maxTokens: maxTokens, sampling: .greedy
                ) { _ in }
            case .audioChat(_, let path, let k):
                guard canHear else { continue }
                let clip = try load(path)
                _ = try Conversation(model: model, task: .chat).generate(
                    user: [.audio(clip)], mode: canSpeak ? .interleaved : .text, maxTokens: maxTokens,
                    sampling: .greedy, audioSampling: .greedy,
                    audio: canSpeak ? .speech(decoder: decoders[k % decoders.count]) : .codes
                ) { _ in }
            case .tts(_, let sentence, let voice, let k):
                guard canSpeak else { continue }
                _ = try Conversation(model: model, task: .tts(voice)).generate(
                    user: [.text(sentence)], mode: .sequential, maxTokens: maxTokens, sampling: .greedy,
                    audioSampling: .greedy, audio: .speech(decoder: decoders[k % decoders.count])
                ) { _ in }
            }
        }
        progress(set.items.count, set.items.count, "done")
    }
}

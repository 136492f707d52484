import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// The audio head and both generation modes against the reference (f32 bundles): the depthformer frame from the
/// golden last hidden state, and the greedy sequential and interleaved streams of the fixtures' chat prompt
/// (system "Respond with interleaved text and audio.", the 1 s input wave as the user turn).
final class AudioOutParityTests: XCTestCase {
    func testDepthformerFrameFromHiddenState() throws {
        for fixture in ["tiny-a", "tiny-b"] {
            let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
            let model = try LFMModel(
                path: try Bundles.path(fixture, .f32), options: ModelOptions(threads: 2, contextLimit: 256))
            let head = try XCTUnwrap(model.audioHead)
            let h = model.backbone.hidden
            let last = Array(g.floats("c.last_hidden").suffix(h))
            let frame = head.step(last, state: head.makeState())
            XCTAssertEqual(frame, g.ints("c.audio_frame_from_last"), fixture)
        }
    }

    func stream(
        _ fixture: String, _ mode: GenerationMode, preset: Preset = .f32
    ) throws -> (text: [Int], frames: [[Int]], modality: [Int]) {
        let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
        let model = try LFMModel(
            path: try Bundles.path(fixture, preset), options: ModelOptions(threads: 2, contextLimit: 256))
        let s = Conversation(model: model, system: ChatFormat.System.interleaved)
        let clip = AudioClip(samples: g.floats("input.wave_16k"), sampleRate: 16000, channels: 1)
        var text: [Int] = [], frames: [[Int]] = [], modality: [Int] = []
        _ = try s.generate(user: [.audio(clip)], mode: mode, maxTokens: 20, sampling: .greedy, audioSampling: .greedy) {
            ev in
            switch ev {
            case .text(let id, _): text.append(id); modality.append(1)
            case .audio(let c): frames.append(c); modality.append(3)
            default: break
            }
        }
        // the prompt ids are the reference's c.text_ids, with the audio where c.modality_flag puts it
        XCTAssertEqual(s.history.prefix(g.ints("c.modality_flag").count).compactMap(\.textId), g.ints("c.text_ids"))
        return (text, frames, modality)
    }

    func testGreedyStreamsMatchReference() throws {
        for fixture in ["tiny-a", "tiny-b"] {
            let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
            for mode in [GenerationMode.sequential, .interleaved] {
                let (text, frames, modality) = try stream(fixture, mode)
                let key = "d.\(mode.rawValue)."
                XCTAssertEqual(text, g.ints(key + "text_tokens"), "\(fixture) \(mode) text")
                let wantFrames = g.ints(key + "audio_frames"), n = wantFrames.count / 8
                let want = (0..<n).map { f in (0..<8).map { wantFrames[$0 * n + f] } }
                XCTAssertEqual(frames, want, "\(fixture) \(mode) frames")
                XCTAssertEqual(modality, g.ints(key + "step_modality"), "\(fixture) \(mode) modality")
                print(
                    """
                    \(fixture) \(mode): \(text.count) text tokens and \(frames.count) frames identical to the \
                    reference
                    """
                )
            }
        }
    }
}

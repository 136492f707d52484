import ArgumentParser
import Foundation
import MiniRuntime

struct TTSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tts",
        abstract:
            "Speak a text (system prompt \"Perform TTS. Use the <voice> voice.\", sequential mode) into a 24 kHz WAV.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The text to speak.")
    var text: String
    @Option(help: "us-male, us-female, uk-male or uk-female.")
    var voice: String = "uk-female"
    @OptionGroup var audioOut: AudioOutputOptions
    @OptionGroup var generation: GenerationOptions

    func validate() throws {
        guard Voice(rawValue: voice) != nil else {
            throw ValidationError("--voice must be one of \(Voice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard audioOut.output != nil else {
            throw ValidationError("-o/--output is required (a WAV path, or - for stdout)")
        }
    }

    func run() throws {
        Interrupt.install()
        let (model, loadSeconds) = try openModel(runtime)
        let decoder = audioOut.decoderKind
        let writer = try WAVWriter(
            path: audioOut.output!, sampleRate: SpeechDecoder.sampleRate, format: audioOut.format)
        let task = TaskPreset.tts(Voice(rawValue: voice)!)
        let session = Conversation(model: model, system: task.system)
        let turn = SpeechTurn(runtime: runtime, session: session, decoder: decoder, writer: writer)
        do {
            try turn.run(
                [.text(text)], mode: task.mode, generation: generation,
                audioSampling: audioOut.sampling(for: task, seed: generation.seed, greedy: generation.greedy),
                turnStart: Date(), loadSeconds: loadSeconds)
            try writer.finish()
        } catch { writer.abandon(); throw error }
    }
}

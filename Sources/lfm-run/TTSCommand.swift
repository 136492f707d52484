import ArgumentParser
import Foundation
import MiniRuntime

struct TTSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tts",
        abstract: "Speak a text (system prompt \"Perform TTS. Use the <voice> voice.\", sequential mode) into a 24 kHz WAV.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The text to speak.")
    var text: String
    @Option(help: "us-male, us-female, uk-male or uk-female.")
    var voice: String = "uk-female"
    @OptionGroup var audioOut: AudioOutputOptions
    @OptionGroup var generation: GenerationOptions

    static let voices = ["us-male": "US male", "us-female": "US female", "uk-male": "UK male", "uk-female": "UK female"]

    func validate() throws {
        guard Self.voices[voice] != nil else { throw ValidationError("--voice must be one of us-male, us-female, uk-male, uk-female") }
        guard audioOut.output != nil else { throw ValidationError("-o/--output is required (a WAV path, or - for stdout)") }
    }

    func run() throws {
        Interrupt.install()
        let (model, loadSeconds) = try openModel(runtime)
        let decoder = try SpeechDecoder(model: model, kind: audioOut.decoderKind)
        let writer = try WAVWriter(path: audioOut.output!, sampleRate: SpeechDecoder.sampleRate, format: audioOut.format)
        let session = ChatSession(model: model, system: ChatFormat.System.tts(voice: Self.voices[voice]!))
        let turn = SpeechTurn(runtime: runtime, session: session, decoder: decoder, writer: writer)
        do {
            try turn.run([.text(text)], mode: .sequential, generation: generation,
                         audioSampling: audioOut.sampling(defaultTemperature: 0.8, defaultTopK: 64, seed: generation.seed, greedy: generation.greedy),
                         turnStart: Date(), loadSeconds: loadSeconds)
            try writer.finish()
        } catch { writer.abandon(); throw error }
    }
}

import ArgumentParser
import Foundation
import MiniRuntime

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract:
            """
            Speech-to-speech chat (system prompt \"Respond with interleaved text and audio.\", interleaved mode): \
            text streams to stdout while the audio is written.
            """,
        discussion:
            """
            Without --audio/--prompt: an interactive conversation on stdin, one turn per line (a WAV path or a \
            line of text); the history, spoken frames included, stays in the cache. With -o OUT.wav, turn N of an \
            interactive conversation is written to OUT-N.wav.
            """
    )

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The spoken question: WAV, FLAC, Ogg, Opus or MP3.")
    var audio: String?
    @Option(help: "A text question (after the audio when both are given).")
    var prompt: String?
    @Option(help: "System prompt.")
    var system: String = TaskPreset.chat.system
    @OptionGroup var audioOut: AudioOutputOptions
    @OptionGroup var generation: GenerationOptions

    func run() throws {
        Interrupt.install()
        let (model, loadSeconds) = try openModel(runtime)
        let decoder = audioOut.decoderKind
        let session = Conversation(model: model, system: system)
        let sampling = audioOut.sampling(for: .chat, seed: generation.seed, greedy: generation.greedy)
        func speak(_ content: [UserContent], output: String?, start: Date) throws {
            let writer = try output.map {
                try WAVWriter(path: $0, sampleRate: SpeechDecoder.sampleRate, format: audioOut.format)
            }
            let turn = SpeechTurn(runtime: runtime, session: session, decoder: decoder, writer: writer)
            do {
                try turn.run(
                    content, mode: TaskPreset.chat.mode, generation: generation, audioSampling: sampling,
                    turnStart: start, loadSeconds: loadSeconds)
                try writer?.finish()
            } catch { writer?.abandon(); throw error }
        }
        if audio != nil || prompt != nil {
            let start = Date()
            var content: [UserContent] = []
            if let audio { content.append(.audio(try readAudio(audio))) }
            if let prompt { content.append(.text(prompt)) }
            try speak(content, output: audioOut.output, start: start)
            return
        }
        if !runtime.json {
            printErr("lfm-run: interactive speech chat; each line is a WAV path or a message, Ctrl-D ends.")
        }
        var n = 0
        while true {
            if !runtime.json { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine(strippingNewline: true) else { break }
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty { continue }
            let start = Date()
            var content: [UserContent] = [.text(l)]
            if l.lowercased().hasSuffix(".wav") || FileManager.default.fileExists(atPath: l) {
                do { content = [.audio(try readAudio(l))] } catch { printErr("error: \(error)"); continue }
            }
            n += 1
            let output = audioOut.output.map { o -> String in
                o == "-" ? o : (o.hasSuffix(".wav") ? String(o.dropLast(4)) : o) + "-\(n).wav"
            }
            try speak(content, output: output, start: start)
            Interrupt.clear()
        }
    }
}

import ArgumentParser
import Foundation
import Formats
import MiniRuntime
#if canImport(Glibc)
import Glibc
#endif

struct LFMRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lfm-run",
        abstract: "Run an LFM2-Audio bundle: text chat, ASR, TTS, speech-to-speech chat and code decoding, streamed.",
        subcommands: [
            TextCommand.self, ASRCommand.self, TTSCommand.self, ChatCommand.self, DecodeCommand.self,
            ParityCommand.self, BenchCommand.self, CompareCommand.self, ServeCommand.self, VADCommand.self,
        ])
}

enum RunExit {
    static func handle(_ error: Error) -> Int32 {
        switch error {
        case let e as FormatsError: printErr("error: \(e.description)"); return 1
        case let e as RuntimeError: printErr("error: \(e.description)"); return 1
        case let e as RunError: printErr("error: \(e.message)"); return e.code
        case let e as ExitCode: return e.rawValue
        default:
            let code = LFMRun.exitCode(for: error)
            let msg = LFMRun.fullMessage(for: error)
            if code == .success { print(msg); return 0 }
            printErr(msg.isEmpty ? "\(error)" : msg)
            return code == .validationFailure ? 2 : 1
        }
    }
}

struct RunError: Error { var message: String; var code: Int32 = 1 }

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Ctrl-C stops the current generation (the session's cancel); a second one exits.
enum Interrupt {
    nonisolated(unsafe) static var count: sig_atomic_t = 0
    static func install() {
        signal(SIGINT) { _ in
            Interrupt.count += 1
            if Interrupt.count > 1 { _exit(130) }
        }
    }
    static var requested: Bool { count > 0 }
    static func clear() { count = 0 }
}

func peakRSSBytes() -> Int { MemoryMonitor.current().hwm }

func jsonLine(_ o: [String: Any]) -> String {
    let d =
        (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]))
        ?? Data("{}".utf8)
    return String(decoding: d, as: UTF8.self)
}

/// Writes to stdout unbuffered (streamed text must appear as it is generated).
func out(_ s: String) {
    var s = s
    s.withUTF8 { b in
        var off = 0
        while off < b.count {
            let n = write(1, b.baseAddress! + off, b.count - off)
            if n <= 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }
}

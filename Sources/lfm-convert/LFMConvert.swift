import ArgumentParser
import Foundation
import Formats
import MiniRuntime
import Quantize
#if canImport(Glibc)
import Glibc
#endif

struct LFMConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lfm-convert",
        abstract:
            """
            Convert an LFM2-Audio checkpoint into one quantized, memory-mappable GGUF bundle; inspect and verify \
            bundles.
            """,
        version: "lfm-convert \(LFMVersion.converter)",
        subcommands: [
            ConvertCommand.self, InspectCommand.self, VerifyCommand.self, ExportLlamaCommand.self,
            ImatrixCommand.self,
        ],
        defaultSubcommand: ConvertCommand.self)
}

/// Ctrl-C: a flag the workers poll; the partial output is removed by the converter.
enum Interrupt {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    static func install() {
        signal(SIGINT) { _ in Interrupt.flag = 1 }
        signal(SIGTERM) { _ in Interrupt.flag = 1 }
    }
    static var requested: Bool { flag != 0 }
}

enum CLIExit {
    static func handle(_ error: Error, command: ParsableCommand.Type) -> Int32 {
        switch error {
        case let e as FormatsError:
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8)); return 1
        case QuantizeError.cancelled:
            FileHandle.standardError.write(Data("\ninterrupted: no output written\n".utf8)); return 130
        case let e as QuantizeError:
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8)); return 1
        case let e as ImatrixError:
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8)); return 1
        case let e as RuntimeError:
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8)); return 1
        case let e as CLIError:
            FileHandle.standardError.write(Data("error: \(e.message)\n".utf8)); return e.code
        default:
            let code = command.exitCode(for: error)
            let msg = command.fullMessage(for: error)
            if code == .success {
                print(msg); return 0
            }
            FileHandle.standardError.write(Data((msg.isEmpty ? "\(error)" : msg).utf8 + [0x0a]))
            // ArgumentParser reports usage problems as validationFailure (64): our contract says 2.
            return code == .validationFailure ? 2 : 1
        }
    }
}

struct CLIError: Error {
    var message: String
    var code: Int32 = 1
}

/// Human-readable sizes.
func fmtBytes(_ b: Int) -> String {
    let d = Double(b)
    if b >= 1 << 30 { return String(format: "%.2f GB", d / Double(1 << 30)) }
    if b >= 1 << 20 { return String(format: "%.1f MB", d / Double(1 << 20)) }
    if b >= 1 << 10 { return String(format: "%.1f KB", d / Double(1 << 10)) }
    return "\(b) B"
}

func jsonString(_ object: Any) -> String {
    let d = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return String(decoding: d, as: UTF8.self)
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

let stderrIsTerminal = isatty(2) != 0

func pad(_ s: String, _ n: Int) -> String {
    s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0)
}
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }

/// Output flags shared by the commands that write a GGUF file.
struct OutputOptions: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: "Output file (.gguf).")
    var output: String

    @Flag(help: "Overwrite an existing output.")
    var force = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
        guard !output.isEmpty else { throw ValidationError("--output is empty") }
    }

    /// The absolute destination, refused when it exists without --force; leftovers of killed runs are removed.
    func destination() throws -> String {
        let out = URL(fileURLWithPath: output).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: out), !force {
            throw CLIError(message: "\(out): already exists (use --force to overwrite)", code: 2)
        }
        StaleTemporaries.remove(near: out)
        return out
    }
}

import ArgumentParser
import Foundation
import Formats
import Quantize

// Entry point: parse, run, and map errors to exit codes (1 bad input, 2 bad usage, 130 interrupted).
Interrupt.install()
signal(SIGPIPE, SIG_IGN)   // `lfm-convert inspect | head` ends quietly
do {
    var command = try LFMConvert.parseAsRoot()
    try command.run()
} catch {
    exit(CLIExit.handle(error, command: LFMConvert.self))
}

import ArgumentParser
import Foundation
import Formats
import Quantize

// Entry point: parse, run, and map errors to exit codes (1 bad input, 2 bad usage, 130 interrupted).
Interrupt.install()
signal(SIGPIPE, SIG_IGN)  // `lfm-convert inspect | head` ends quietly
signal(SIGXFSZ, SIG_IGN)  // over a file-size limit, write() fails with EFBIG: a clear error instead of a kill
do {
    var command = try LFMConvert.parseAsRoot()
    try command.run()
} catch {
    exit(CLIExit.handle(error, command: LFMConvert.self))
}

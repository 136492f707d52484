import ArgumentParser
import Foundation

// Entry point: exit codes 0 ok, 1 bad input, 2 bad usage, 130 interrupted.
signal(SIGPIPE, SIG_IGN)
signal(SIGXFSZ, SIG_IGN)  // over a file-size limit, writes fail with EFBIG: a clear error
do {
    var command = try LFMRun.parseAsRoot()
    try command.run()
} catch {
    exit(RunExit.handle(error))
}

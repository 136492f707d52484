import ArgumentParser
import Foundation

// Entry point: exit codes 0 ok, 1 bad input, 2 bad usage, 130 interrupted.
signal(SIGPIPE, SIG_IGN)
do {
    var command = try LFMRun.parseAsRoot()
    try command.run()
} catch {
    exit(RunExit.handle(error))
}

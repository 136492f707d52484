import ArgumentParser
import Foundation
import LFMServer

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract:
            """
            A local speech server: OpenAI-compatible /v1/audio/speech, /v1/audio/transcriptions, \
            /v1/chat/completions, the /v1/realtime WebSocket and a live chat page at /.
            """,
        discussion:
            """
            Prints `listening on http://HOST:PORT` on stderr when ready (--port 0 picks a free port). SIGTERM or \
            Ctrl-C stops accepting, cancels running turns and exits 0. docs/serving.md describes the routes.
            """
    )

    @Option(help: "The bundle (.gguf) made by lfm-convert.")
    var bundle: String
    @Option(help: "Address to bind (default: loopback only).")
    var host: String = "127.0.0.1"
    @Option(help: "Port (0: a free one).")
    var port: Int = 8080
    @Option(help: "Require `Authorization: Bearer KEY` on every route but /health.")
    var apiKey: String?
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?
    @Option(help: "Context limit per conversation, in positions.")
    var ctx: Int?
    @Option(help: "Conversations held at once (running turns, stored conversation ids, realtime sessions).")
    var maxConversations: Int = 16
    @Option(help: "Largest request body, in MB.")
    var maxUpload: Int = 100
    @Option(help: "Allow cross-origin requests from this origin (* for any).")
    var cors: String?
    @Flag(help: "Step each turn on its own instead of batching concurrent turns' decode steps (for comparisons).")
    var noBatch = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard maxConversations >= 1 else { throw ValidationError("--max-conversations must be at least 1") }
        guard (1...4096).contains(maxUpload) else { throw ValidationError("--max-upload must be 1 to 4096 MB") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if let c = ctx, c < 16 { throw ValidationError("--ctx must be at least 16") }
    }

    func run() throws {
        var config = ServerConfig(bundle: bundle)
        config.host = host
        config.port = port
        config.apiKey = apiKey
        config.threads = threads
        config.ctx = ctx
        config.maxConversations = maxConversations
        config.maxUploadBytes = maxUpload << 20
        config.corsOrigin = cors
        config.batchDecode = !noBatch
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task.detached {
            do { try await LFMServer.run(config) { printErr($0) } } catch { failure = error }
            done.signal()
        }
        done.wait()
        if let failure { throw failure }
    }
}

import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import MiniRuntime
import NIOCore
import ServiceLifecycle
import Synchronization

/// `lfm-run serve`'s settings.
public struct ServerConfig: Sendable {
    public var bundle: String
    public var host = "127.0.0.1"
    public var port = 8080
    public var apiKey: String?
    public var threads: Int?
    public var ctx: Int?
    /// Conversations held at once (running turns, stored `conversation` ids, realtime sessions).
    public var maxConversations = 16
    /// Largest request body, in bytes.
    public var maxUploadBytes = 100 << 20
    public var corsOrigin: String?
    /// Batch the decode steps of concurrent turns into one pass over the weights (`ModelOptions.batchDecode`).
    public var batchDecode = true
    public init(bundle: String) { self.bundle = bundle }
}

/// The request context: an upload limit of our own (Hummingbird's default is 2 MiB) and WebSocket upgrades.
public struct ServerContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<ServerContext>
    public init(source: Source) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
    public var maxUploadSize: Int { UploadLimit.bytes.load(ordering: .relaxed) }
}

enum UploadLimit { static let bytes = Atomic<Int>(100 << 20) }

/// Everything the routes share: one model, the conversations, the metrics.
final class ServerState: Sendable {
    let config: ServerConfig
    let model: LFMModel
    let modelId: String
    let created: Int
    let conversations: ConversationRegistry
    let metrics = Metrics()
    let shuttingDown = Atomic<Bool>(false)
    /// A conversation's context, in positions (`--ctx`).
    let contextLimit: Int
    /// More text than this (UTF-8 bytes) in one request cannot fit the context: no token covers more than the
    /// tokenizer's longest token.
    let maxTextBytes: Int

    init(config: ServerConfig, model: LFMModel) {
        self.config = config
        self.model = model
        contextLimit = ModelOptions(contextLimit: config.ctx).contextLimit
        let t = model.tokenizer
        let longest = (0..<t.vocabSize).reduce(1) { max($0, t.bytes(of: $1).count) }
        maxTextBytes = contextLimit * longest
        modelId = URL(fileURLWithPath: config.bundle).deletingPathExtension().lastPathComponent
        created = Int(Date().timeIntervalSince1970)
        conversations = ConversationRegistry(limit: config.maxConversations, metrics: metrics)
    }
}

/// Conversations held by the server: every running turn, the stored ones (`conversation` ids) and realtime
/// sessions count towards `--max-conversations`; when full, the least recently used idle stored conversation is
/// dropped, and when none is idle the request gets a 429.
final class ConversationRegistry: Sendable {
    struct Stored {
        var conversation: Conversation
        var lastUsed: Date
        var busy: Bool
    }
    struct State {
        var stored: [String: Stored] = [:]
        var transient = 0
        var running: [ObjectIdentifier: Conversation] = [:]
        var onShutdown: [Int: @Sendable () -> Void] = [:]
        var nextToken = 0
    }
    let limit: Int
    let metrics: Metrics
    private let state = Mutex(State())
    init(limit: Int, metrics: Metrics) {
        self.limit = limit
        self.metrics = metrics
    }

    var active: Int { state.withLock { $0.stored.count + $0.transient } }

    private func full() -> APIError {
        APIError(
            .tooManyRequests,
            "the server holds its maximum of \(limit) conversations (--max-conversations); retry later",
            code: "too_many_conversations")
    }

    /// Makes room for one more; false when every held conversation is busy.
    private static func makeRoom(_ s: inout State, limit: Int) -> Bool {
        if s.stored.count + s.transient < limit { return true }
        guard let victim = s.stored.filter({ !$0.value.busy }).min(by: { $0.value.lastUsed < $1.value.lastUsed })
        else { return false }
        s.stored[victim.key] = nil
        return true
    }

    /// A slot for a stateless request or a realtime session; `release` frees it.
    func acquireTransient() throws {
        let ok = state.withLock { s in
            guard Self.makeRoom(&s, limit: limit) else { return false }
            s.transient += 1
            return true
        }
        if !ok { throw full() }
        metrics.setActive(active)
    }
    func releaseTransient() {
        state.withLock { $0.transient -= 1 }
        metrics.setActive(active)
    }

    /// The stored conversation `id` (made with `make` when new), marked busy; a second request on a busy
    /// conversation gets a 409.
    func acquire(id: String, make: () -> Conversation) throws -> Conversation {
        enum Outcome { case ok(Conversation), busy, full }
        let r: Outcome = state.withLock { s in
            if var e = s.stored[id] {
                if e.busy { return .busy }
                e.busy = true; e.lastUsed = Date()
                s.stored[id] = e
                return .ok(e.conversation)
            }
            guard Self.makeRoom(&s, limit: limit) else { return .full }
            let c = make()
            s.stored[id] = Stored(conversation: c, lastUsed: Date(), busy: true)
            return .ok(c)
        }
        metrics.setActive(active)
        switch r {
        case .ok(let c): return c
        case .busy:
            throw APIError(
                .conflict, "conversation '\(id)' is answering another request", param: "conversation",
                code: "conversation_busy")
        case .full: throw full()
        }
    }
    func release(id: String) {
        state.withLock { s in
            if var e = s.stored[id] {
                e.busy = false; e.lastUsed = Date()
                s.stored[id] = e
            }
        }
    }
    func exists(_ id: String) -> Bool { state.withLock { $0.stored[id] != nil } }

    /// Running turns, cancelled on shutdown.
    func running(_ c: Conversation) { state.withLock { $0.running[ObjectIdentifier(c)] = c } }
    func finished(_ c: Conversation) { _ = state.withLock { $0.running.removeValue(forKey: ObjectIdentifier(c)) } }

    /// Called on shutdown (realtime sessions close themselves); returns a token for `removeShutdownHook`.
    func addShutdownHook(_ f: @escaping @Sendable () -> Void) -> Int {
        state.withLock { s in
            s.nextToken += 1
            s.onShutdown[s.nextToken] = f
            return s.nextToken
        }
    }
    func removeShutdownHook(_ t: Int) { _ = state.withLock { $0.onShutdown.removeValue(forKey: t) } }

    func cancelAll() {
        let (cs, hooks) = state.withLock { s in (Array(s.running.values), Array(s.onShutdown.values)) }
        for c in cs { c.cancel() }
        for h in hooks { h() }
    }
}

/// Bearer authentication (every route but /health), errors in OpenAI's shape, request metrics.
struct APIMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let state: ServerState

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        let t0 = Date()
        var route = path
        func finish(_ r: Response) -> Response {
            state.metrics.request(route: context.endpointPath ?? route, status: Int(r.status.code))
            return r
        }
        if !Routes.known.contains(path) { route = "other" }
        if let key = state.config.apiKey, path != "/health", !Self.authorized(request, key: key) {
            let e = APIError(
                .unauthorized, "a valid API key is needed: Authorization: Bearer KEY", code: "invalid_api_key")
            return finish(try e.response(from: request, context: context))
        }
        do {
            let r = try await next(request, context)
            _ = t0
            return finish(r)
        } catch {
            let e = APIError.from(error)
            if e.status.code >= 500 { context.logger.error("\(request.method) \(path): \(error)") }
            return finish(try e.response(from: request, context: context))
        }
    }

    static func authorized(_ request: Request, key: String) -> Bool {
        if let h = request.headers[.authorization], h == "Bearer \(key)" { return true }
        // browsers cannot set headers on a WebSocket: OpenAI's subprotocol form
        if let p = request.headers[.secWebSocketProtocol] {
            for part in p.split(separator: ",") {
                let t = part.trimmingCharacters(in: .whitespaces)
                if t == "openai-insecure-api-key.\(key)" { return true }
            }
        }
        return false
    }
}

enum Routes {
    static let known: Set<String> = [
        "/", "/health", "/metrics", "/v1/models", "/v1/audio/speech", "/v1/audio/transcriptions",
        "/v1/chat/completions", "/v1/realtime",
    ]
}

/// The server: opens the bundle once, serves until SIGTERM / SIGINT, then stops accepting, cancels running turns
/// and returns.
public enum LFMServer {
    public static func run(_ config: ServerConfig, log: @escaping @Sendable (String) -> Void) async throws {
        UploadLimit.bytes.store(config.maxUploadBytes, ordering: .relaxed)
        let model = try LFMModel(
            path: config.bundle,
            options: ModelOptions(threads: config.threads, contextLimit: config.ctx, batchDecode: config.batchDecode))
        let state = ServerState(config: config, model: model)
        let app = makeApplication(state: state) { channel in
            let port = channel.localAddress?.port ?? config.port
            let host = config.host.contains(":") ? "[\(config.host)]" : config.host
            log("listening on http://\(host):\(port)")
        }
        var logger = Logger(label: "lfm-serve")
        logger.logLevel = .warning
        let group = ServiceGroup(
            configuration: .init(
                services: [app, ShutdownWatcher(state: state)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    static func makeApplication(
        state: ServerState, onRunning: @escaping @Sendable (any Channel) async -> Void
    ) -> some ApplicationProtocol {
        let router = Router(context: ServerContext.self)
        // CORS outermost: preflights carry no key, and errors need the headers too
        if let origin = state.config.corsOrigin {
            router.add(
                middleware: CORSMiddleware(
                    allowOrigin: origin == "*" ? .all : .custom(origin),
                    allowHeaders: [.accept, .authorization, .contentType, .origin],
                    allowMethods: [.get, .post, .options]))
        }
        router.add(middleware: APIMiddleware(state: state))
        HTTPRoutes(state: state).register(router)
        RealtimeRoute(state: state).register(router)
        var logger = Logger(label: "lfm-serve")
        logger.logLevel = .warning
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                configuration: .init(ws: WebSocketServerConfiguration(maxFrameSize: 1 << 20, closeTimeout: .seconds(2)))
            ),
            configuration: .init(address: .hostname(state.config.host, port: state.config.port), serverName: nil),
            onServerRunning: onRunning, logger: logger)
    }
}

/// Cancels running turns and closes realtime sessions when a graceful shutdown begins. Connections that are still
/// open `deadline` later (a client that never reads its stream, a socket left half open) do not keep the process
/// alive: it exits 0 then, as the turns it ran are already cancelled.
struct ShutdownWatcher: Service {
    let state: ServerState
    var deadline: Double = 10
    func run() async throws {
        try? await gracefulShutdown()
        state.shuttingDown.store(true, ordering: .sequentiallyConsistent)
        state.conversations.cancelAll()
        let seconds = deadline
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: seconds)
            let line = "shutdown: connections still open after \(Int(seconds)) s, exiting\n"
            FileHandle.standardError.write(Data(line.utf8))
            _exit(0)
        }
    }
}

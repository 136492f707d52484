import Foundation

/// The state a streaming component carries from one step to the next (KV caches, conv carries, overlap-add
/// buffers), made by the component and owned by one conversation. The weights stay in the component, which is
/// immutable and shared; `reset()` returns the state to the start of a stream, and a composite state resets the
/// states it holds (the shape of moshi's `StreamingModule`: `step` on a chunk, `reset_state`).
public protocol StreamingState: AnyObject {
    /// Back to the start of a stream.
    func reset()
    /// Bytes this state holds (buffers it allocated; reserved cache space counted in full).
    var bytes: Int { get }
}

/// A component with streaming state: `makeState()` gives a fresh state and `step(_:state:)` consumes one chunk of
/// input, advancing the state.
public protocol StreamingModule: Sendable {
    associatedtype State: StreamingState
    associatedtype Input
    associatedtype Output
    func makeState() -> State
    func step(_ input: Input, state: State) throws -> Output
}

/// One intermediate tensor seen by a trace: which stage (`"lfm.hidden"`, `"text.logits"`, `"depth.logits"`,
/// `"mimi.seanet.2"`, …), the layer or codebook index when there is one, and its rows (`width` floats each).
public struct TraceEvent: Sendable {
    public let name: String
    public let layer: Int?
    public let values: [Float]
    public let width: Int
    public init(name: String, layer: Int? = nil, values: [Float], width: Int) {
        self.name = name; self.layer = layer; self.values = values; self.width = width
    }
}

/// The one inspection hook: a state with a trace reports its intermediate tensors to it (parity tools and tests).
public typealias Trace = @Sendable (TraceEvent) -> Void

/// A composite state over a list of states (resets and sizes add up).
final class StateList<S: StreamingState>: StreamingState {
    let items: [S]
    init(_ items: [S]) { self.items = items }
    func reset() { items.forEach { $0.reset() } }
    var bytes: Int { items.reduce(0) { $0 + $1.bytes } }
    subscript(i: Int) -> S { items[i] }
}

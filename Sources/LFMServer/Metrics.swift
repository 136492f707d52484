import Foundation
import Synchronization

/// Prometheus text metrics: requests by route and status, active conversations, time to first audio and real-time
/// factor histograms.
final class Metrics: Sendable {
    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0
        init(_ b: [Double]) { bounds = b; counts = Array(repeating: 0, count: b.count) }
        mutating func observe(_ v: Double) {
            for (i, b) in bounds.enumerated() where v <= b { counts[i] += 1 }
            sum += v; count += 1
        }
    }
    struct State {
        var requests: [String: Int] = [:]
        var active = 0
        var ttfa = Histogram([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10])
        var rtf = Histogram([0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10])
    }
    private let state = Mutex(State())

    func request(route: String, status: Int) {
        state.withLock { $0.requests["\(route)\u{0}\(status)", default: 0] += 1 }
    }
    func setActive(_ n: Int) { state.withLock { $0.active = n } }
    /// A turn that spoke: its time to first audio (seconds) and real-time factor (audio seconds per wall second).
    func spoke(timeToFirstAudio: Double, realTimeFactor: Double) {
        state.withLock { s in
            if timeToFirstAudio > 0 { s.ttfa.observe(timeToFirstAudio) }
            if realTimeFactor > 0 { s.rtf.observe(realTimeFactor) }
        }
    }

    func render() -> String {
        let s = state.withLock { $0 }
        var out = "# HELP lfm_requests_total HTTP requests by route and status.\n# TYPE lfm_requests_total counter\n"
        for (k, v) in s.requests.sorted(by: { $0.key < $1.key }) {
            let parts = k.split(separator: "\u{0}", omittingEmptySubsequences: false)
            let route = parts[0].replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(
                of: "\"", with: "\\\"")
            out += "lfm_requests_total{route=\"\(route)\",status=\"\(parts[1])\"} \(v)\n"
        }
        out += "# HELP lfm_active_conversations Conversations held now.\n# TYPE lfm_active_conversations gauge\n"
        out += "lfm_active_conversations \(s.active)\n"
        func hist(_ name: String, _ help: String, _ h: Histogram) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for (i, b) in h.bounds.enumerated() { out += "\(name)_bucket{le=\"\(b)\"} \(h.counts[i])\n" }
            out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
        }
        hist("lfm_time_to_first_audio_seconds", "From the start of a turn to its first audio.", s.ttfa)
        hist("lfm_real_time_factor", "Audio seconds spoken per wall second, per turn.", s.rtf)
        return out
    }
}

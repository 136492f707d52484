import Foundation

/// Voice activity detection of our own: 20 ms frames, speech-band energy (200 Hz – 4 kHz) over an adaptive noise
/// floor with hysteresis, speech confirmed after 60 ms, ended after `silenceMs` without speech.
public struct VoiceActivityDetector: Sendable {
    public enum Event: Equatable, Sendable {
        /// Speech began at this input position (milliseconds from the first sample the detector saw).
        case started(ms: Int)
        case stopped(ms: Int)
    }
    public let rate: Int
    /// 0…1: higher needs louder speech over the noise floor (OpenAI's default is 0.5).
    public var threshold: Double
    public var silenceMs: Int
    let frame: Int
    var carry: [Float] = []
    var frames = 0
    var noiseDb = -60.0
    var warm = 0
    public private(set) var inSpeech = false
    var speechRun = 0
    var silenceRun = 0
    var speechStartFrame = 0

    // the speech band: two high-pass sections at 200 Hz (hum, rumble, wind) and one low-pass at 4 kHz (hiss)
    let hpA: Double
    let lpB: Double
    var hp1 = (x: 0.0, y: 0.0)
    var hp2 = (x: 0.0, y: 0.0)
    var lp = 0.0

    public init(rate: Int, threshold: Double = 0.5, silenceMs: Int = 500) {
        self.rate = rate
        self.threshold = min(max(threshold, 0), 1)
        self.silenceMs = max(silenceMs, 20)
        frame = max(rate / 50, 1)
        let dt = 1 / Double(max(rate, 1))
        let rcHigh = 1 / (2 * Double.pi * 200), rcLow = 1 / (2 * Double.pi * min(4000, Double(rate) * 0.45))
        hpA = rcHigh / (rcHigh + dt)
        lpB = dt / (rcLow + dt)
    }

    /// One sample through the speech-band filter.
    mutating func band(_ x: Double) -> Double {
        let y1 = hpA * (hp1.y + x - hp1.x)
        hp1 = (x, y1)
        let y2 = hpA * (hp2.y + y1 - hp2.x)
        hp2 = (y1, y2)
        lp += lpB * (y2 - lp)
        return lp
    }

    /// Frame energies above the floor by this many dB start speech; a third of it keeps speech going.
    var marginDb: Double { 4 + 10 * threshold }
    var floorDb: Double { -55 + 20 * threshold }

    public mutating func push(_ samples: [Float]) -> [Event] {
        var events: [Event] = []
        carry += samples
        var o = 0
        while carry.count - o >= frame {
            var p = 0.0
            for i in o..<(o + frame) {
                let v = band(Double(carry[i]))
                p += v * v
            }
            o += frame
            let db = 10 * log10(p / Double(frame) + 1e-12)
            step(db, &events)
        }
        carry.removeFirst(o)
        return events
    }

    mutating func step(_ db: Double, _ events: inout [Event]) {
        frames += 1
        if warm < 5 {
            // the first 100 ms set the floor
            noiseDb = warm == 0 ? db : min(noiseDb, db)
            warm += 1
        }
        let loud = db > max(noiseDb + (inSpeech ? marginDb / 3 : marginDb), inSpeech ? floorDb - 6 : floorDb)
        if !inSpeech {
            if loud {
                speechRun += 1
                if speechRun == 1 { speechStartFrame = frames - 1 }
                if speechRun >= 3 {
                    inSpeech = true
                    silenceRun = 0
                    events.append(.started(ms: speechStartFrame * 20))
                }
            } else {
                speechRun = 0
                // the floor follows quiet frames: down fast, up slowly
                noiseDb = db < noiseDb ? 0.7 * noiseDb + 0.3 * db : 0.98 * noiseDb + 0.02 * db
            }
        } else {
            if loud {
                silenceRun = 0
            } else {
                silenceRun += 1
                if silenceRun * 20 >= silenceMs {
                    inSpeech = false
                    speechRun = 0
                    events.append(.stopped(ms: (frames - silenceRun) * 20))
                }
            }
        }
    }
}

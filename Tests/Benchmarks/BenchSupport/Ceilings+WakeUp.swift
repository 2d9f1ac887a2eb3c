import Foundation
import ThreadedIO

extension Ceilings {
    /// A thread wakes another through a pipe and waits to be woken back, after `gap` of
    /// idleness each time, `roundTrips` times; the round trips' p50 and p99 in microseconds.
    ///
    /// Each round trip is two wake-ups of a thread asleep on an idle core, as at every hop of a
    /// message at the floor's rate (between the services' threads, and through the servers):
    /// some thirty on a DM's path. A virtual machine's idle cores may take much longer to wake
    /// than a physical machine's, and this changes from one machine to the next; the same run's
    /// figure tells the floor's readers which kind of machine they read about.
    public static func threadWakeUpRoundTrip(
        roundTrips: Int = 2_000, gap: Duration = .milliseconds(1)
    ) async throws -> (p50: Double, p99: Double) {
        var there: [Int32] = [0, 0]
        var back: [Int32] = [0, 0]
        guard pipe(&there) == 0 else { throw WakeUpError(step: "pipe", errorNumber: errno) }
        guard pipe(&back) == 0 else {
            let failure = errno
            close(there[0])
            close(there[1])
            throw WakeUpError(step: "pipe", errorNumber: failure)
        }
        defer { for descriptor in there + back { close(descriptor) } }
        let (thereRead, thereWrite, backRead, backWrite) = (there[0], there[1], back[0], back[1])
        let echoed = Promise<Void>()
        let echo = Thread {
            var byte: UInt8 = 0
            while read(thereRead, &byte, 1) == 1, byte == 1 { _ = write(backWrite, &byte, 1) }
            echoed.succeed(())
        }
        echo.name = "wake-up-echo"
        echo.start()
        // The samples, and the errno of a write or read that failed (0: none did).
        let measured = Promise<([Double], Int32)>()
        let pause = useconds_t(gap.components.attoseconds / 1_000_000_000_000 + gap.components.seconds * 1_000_000)
        let measuring = Thread {
            var samples: [Double] = []
            samples.reserveCapacity(roundTrips)
            var byte: UInt8 = 1
            var failure: Int32 = 0
            for _ in 0..<roundTrips {
                usleep(pause)
                let started = ContinuousClock.now
                guard write(thereWrite, &byte, 1) == 1, read(backRead, &byte, 1) == 1 else {
                    failure = errno
                    break
                }
                let elapsed = ContinuousClock.now - started
                samples.append(Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12)
            }
            var stop: UInt8 = 0
            _ = write(thereWrite, &stop, 1)
            measured.succeed((samples, failure))
        }
        measuring.name = "wake-up-probe"
        measuring.start()
        let (unsorted, failure) = try await measured.value()
        try await echoed.value()
        let samples = unsorted.sorted()
        guard failure == 0, let p50 = samples.percentile(0.5), let p99 = samples.percentile(0.99) else {
            throw WakeUpError(step: "read or write", errorNumber: failure)
        }
        return (p50, p99)
    }

    struct WakeUpError: Error, CustomStringConvertible {
        var step: String
        /// The failed call's `errno`, read on its own thread right after it.
        var errorNumber: Int32
        var description: String { "thread wake-up probe: \(self.step) failed (errno \(self.errorNumber))" }
    }
}

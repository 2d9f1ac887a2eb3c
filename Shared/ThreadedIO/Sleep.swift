import Foundation

extension HandleThread {
    /// Blocks the calling handle thread for `duration`. Handle threads only: never call this
    /// from async code.
    public static func sleep(_ duration: Duration) {
        Thread.sleep(forTimeInterval: Double(Backoff.milliseconds(duration)) / 1000)
    }
}

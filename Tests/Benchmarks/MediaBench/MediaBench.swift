import BenchSupport
import Foundation
import Histogram
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Upload throughput through the gateway (`POST /api/attachments`, multipart) to whichever
/// store the running media service uses: MiB/s and latency percentiles for 100 KiB and 5 MiB
/// files, 4 concurrent uploaders. `scripts/bench-media.sh` runs it against the local store and
/// against the local Cloudinary-compatible server.
@main
struct MediaBench {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["GATEWAY_URL"] ?? "http://127.0.0.1:5000"
        let label = environment["MEDIA_BENCH_LABEL"] ?? "media"
        let token = try await Account.register(base: base, name: "media").token
        say("media-bench (\(label)) against \(base), 4 concurrent uploaders")
        for (name, size, count) in [("100 KiB", 100 * 1024, 400), ("5 MiB", 5 * 1024 * 1024, 40)] {
            let file = self.textFile(size: size)
            let result = try await self.measure(base: base, token: token, file: file, count: count, uploaders: 4)
            say(
                String(
                    format: "  %-8@ %4d uploads  %8.1f MiB/s  %7.1f uploads/s  p50 %7.1f ms  p99 %7.1f ms  errors %d",
                    name as NSString, count, result.mebibytesPerSecond, result.rate, result.p50, result.p99, result.errors))
        }
    }

    struct Result {
        var mebibytesPerSecond: Double
        var rate: Double
        var p50: Double
        var p99: Double
        var errors: Int
    }

    static func measure(base: String, token: String, file: Data, count: Int, uploaders: Int) async throws -> Result {
        let boundary = "bench-\(UUID().uuidString)"
        var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.txt\"\r\n".utf8)
        body.append(Data("Content-Type: text/plain\r\n\r\n".utf8))
        body.append(file)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        var request = URLRequest(url: URL(string: "\(base)/api/attachments")!)
        request.httpMethod = "POST"
        request.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.timeoutInterval = 120
        let upload = request
        let payload = body
        let started = ContinuousClock.now
        let (histogram, errors) = await withTaskGroup(of: (Histogram<UInt64>, Int).self) { group in
            for lane in 0..<uploaders {
                group.addTask {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
                    var errors = 0
                    var index = lane
                    while index < count {
                        let sent = ContinuousClock.now
                        do {
                            let (_, response) = try await URLSession.shared.upload(for: upload, from: payload)
                            if (response as? HTTPURLResponse)?.statusCode == 201 {
                                let elapsed = ContinuousClock.now - sent
                                histogram.record(
                                    UInt64(
                                        elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds
                                            / 1_000_000_000_000))
                            } else {
                                errors += 1
                            }
                        } catch {
                            errors += 1
                        }
                        index += uploaders
                    }
                    return (histogram, errors)
                }
            }
            var total = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            var errors = 0
            for await (histogram, laneErrors) in group {
                total.add(histogram)
                errors += laneErrors
            }
            return (total, errors)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = elapsed.seconds
        let done = Double(count - errors)
        return Result(
            mebibytesPerSecond: done * Double(file.count) / 1_048_576 / seconds, rate: done / seconds,
            p50: Double(histogram.valueAtPercentile(50)) / 1000, p99: Double(histogram.valueAtPercentile(99)) / 1000,
            errors: errors)
    }

    /// UTF-8 text of `size` bytes (a type every store accepts).
    static func textFile(size: Int) -> Data {
        let line = Data("the quick brown fox jumps over the lazy dog 0123456789\n".utf8)
        var data = Data(capacity: size)
        while data.count < size { data.append(line) }
        return data.prefix(size)
    }
}

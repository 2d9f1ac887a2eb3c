import Foundation
import Testing

@testable import SocketIOServer

@Suite("Session and socket ids")
struct RandomIDTests {
    @Test("an id is 20 URL-safe base64 characters of 15 random bytes, and ids differ")
    func shape() throws {
        let ids = (0..<10_000).map { _ in RandomID.make() }
        #expect(Set(ids).count == ids.count)
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for id in ids.prefix(100) {
            #expect(id.count == 20)
            #expect(id.allSatisfy(alphabet.contains))
            // Standard base64 of the same text decodes to 15 bytes.
            let standard = id.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            #expect(try #require(Data(base64Encoded: standard)).count == 15)
        }
        // Every character position takes many values: the bits are spread, not stuck.
        for position in 0..<20 {
            let values = Set(ids.map { Array($0)[position] })
            #expect(values.count > 32, "position \(position)")
        }
    }
}

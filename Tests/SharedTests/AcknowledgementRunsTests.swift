import Testing

@testable import MessengerAMQP

@Suite("Acknowledgement runs")
struct AcknowledgementRunsTests {
    @Test("acks that reach back to the oldest delivery go out as one multiple ack")
    func run() {
        var runs = AcknowledgementRuns()
        for tag in [3, 1, 2] as [UInt64] { runs.ack(tag) }
        #expect(runs.flush() == .init(multiple: 3, single: []))
        #expect(runs.settledThrough == 3)
        #expect(runs.flush() == .init(multiple: nil, single: []))
    }

    @Test("acks beyond an unsettled delivery go out one by one, and a later run passes over them")
    func gap() {
        var runs = AcknowledgementRuns()
        for tag in [1, 3, 5] as [UInt64] { runs.ack(tag) }
        #expect(runs.flush() == .init(multiple: 1, single: [3, 5]))
        runs.ack(2)
        // 3 was acked on its own already: the multiple ack names 2, the last one still unsettled.
        #expect(runs.flush() == .init(multiple: 2, single: []))
        #expect(runs.settledThrough == 3)
        runs.ack(4)
        #expect(runs.flush() == .init(multiple: 4, single: []))
        #expect(runs.settledThrough == 5)
    }

    @Test("nacks and rejects count as settled")
    func settledAlone() {
        var runs = AcknowledgementRuns()
        runs.settledAlone(1)
        runs.ack(3)
        #expect(runs.flush() == .init(multiple: nil, single: [3]))
        runs.settledAlone(2)
        #expect(runs.settledThrough == 3)
        runs.ack(4)
        #expect(runs.flush() == .init(multiple: 4, single: []))
    }

    @Test("every delivery is settled exactly once, in any order")
    func shuffled() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var runs = AcknowledgementRuns()
            var tags = Array(UInt64(1)...UInt64(64)).shuffled(using: &generator)
            var outstanding = Set(tags)
            var acked = Set<UInt64>()
            while !tags.isEmpty {
                let take = Int.random(in: 1...min(8, tags.count), using: &generator)
                let batch = tags.prefix(take)
                tags.removeFirst(take)
                for tag in batch {
                    if Bool.random(using: &generator) && tag % 7 == 0 {
                        runs.settledAlone(tag)
                        outstanding.remove(tag)
                    } else {
                        runs.ack(tag)
                        acked.insert(tag)
                    }
                }
                let frames = runs.flush()
                for tag in frames.single { #expect(outstanding.remove(tag) != nil) }
                if let multiple = frames.multiple {
                    // The broker only accepts a multiple ack naming a delivery it still holds.
                    #expect(outstanding.contains(multiple))
                    // ... and settles only deliveries the consumer acked.
                    #expect(outstanding.filter { $0 <= multiple }.isSubset(of: acked))
                    outstanding = outstanding.filter { $0 > multiple }
                }
            }
            #expect(outstanding.isEmpty)
            #expect(runs.settledThrough == 64)
        }
    }
}

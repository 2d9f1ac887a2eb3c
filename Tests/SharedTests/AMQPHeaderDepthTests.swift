import CRabbitMQ
import Testing

@testable import MessengerAMQP

/// Headers as librabbitmq-c hands them over, nested far deeper than anyone uses.
@Suite("Message headers read from the library")
struct AMQPHeaderDepthTests {
    /// Arrays nested 100,000 deep, as a producer may send them in one frame: read by recursion
    /// without a bound they overflowed the consuming thread's stack (a review in the forty-sixth
    /// session); past ``AMQPFieldValue/maximumDepth`` they are `.void`.
    @Test("nesting past the maximum depth is read as void, without recursing into it")
    func deepNesting() {
        let depth = 100_000
        let fields = UnsafeMutablePointer<amqp_field_value_t>.allocate(capacity: depth)
        defer { fields.deallocate() }
        for level in 0..<depth {
            var field = amqp_field_value_t()
            if level == depth - 1 {
                field.kind = FieldKind.boolean
                field.value.boolean = 1
            } else {
                field.kind = FieldKind.array
                field.value.array = amqp_array_t(num_entries: 1, entries: fields + level + 1)
            }
            (fields + level).initialize(to: field)
        }
        var value = AMQPFieldValue(fields[0])
        var levels = 0
        while case .array(let items) = value, let first = items.first {
            value = first
            levels += 1
        }
        #expect(levels == AMQPFieldValue.maximumDepth)
        #expect(value == .void)
    }
}

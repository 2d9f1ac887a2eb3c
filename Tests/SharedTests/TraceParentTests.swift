import Logging
import MessengerContracts
import MessengerServiceKit
import Testing

/// The W3C `traceparent` header as the gateway reads it (https://www.w3.org/TR/trace-context/),
/// the trace ids it starts, and the correlation id on log lines.
@Suite("Trace context")
struct TraceParentTests {
    static let example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("a valid header gives its trace id, parent id and flags")
    func valid() throws {
        let parent = try #require(TraceParent(header: Self.example))
        #expect(parent.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(parent.parentID == "00f067aa0ba902b7")
        #expect(parent.flags == 1)
        #expect(TraceParent(header: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.flags == 0)
    }

    @Test("a later version is read by its first four fields")
    func laterVersion() {
        #expect(TraceParent(header: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?.traceID != nil)
        #expect(
            TraceParent(header: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next")?.traceID
                == "4bf92f3577b34da6a3ce929d0e0e4736")
        // After the flags, a later version's next field must start with a dash.
        #expect(TraceParent(header: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x") == nil)
    }

    @Test(
        "what the specification says to ignore is refused",
        arguments: [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // version 00 has four fields
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // the forbidden version
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero parent id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  // dashes misplaced
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, \(Self.example)",  // two headers joined
        ])
    func refused(header: String) {
        #expect(TraceParent(header: header) == nil)
    }

    @Test("a new trace id is 32 lowercase hex digits, a valid trace id, and new each time")
    func newTraceID() throws {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = TraceParent.newTraceID()
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
            #expect(TraceParent(header: "00-\(id)-00f067aa0ba902b7-01")?.traceID == id)
            seen.insert(id)
        }
        #expect(seen.count == 1000)
    }

    @Test("log lines and envelopes made while a correlation is bound carry it")
    func boundCorrelation() {
        #expect(MessengerLogging.correlation.get().isEmpty)
        #expect(Envelope(type: "test.thing.v1", data: EmptyPayload()).correlationId == nil)
        RequestCorrelation.$id.withValue("4bf92f3577b34da6a3ce929d0e0e4736") {
            #expect(MessengerLogging.correlation.get()[LogKey.correlationID] == "4bf92f3577b34da6a3ce929d0e0e4736")
            #expect(
                Envelope(type: "test.thing.v1", data: EmptyPayload()).correlationId == "4bf92f3577b34da6a3ce929d0e0e4736")
        }
    }
}

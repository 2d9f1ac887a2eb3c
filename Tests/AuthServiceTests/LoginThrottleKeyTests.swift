import Testing

@testable import AuthService

@Suite("The login throttle's address counters")
struct LoginThrottleKeyTests {
    @Test("an IPv6 address counts as its /64, an IPv4-mapped one as its IPv4 address, an IPv4 one as itself")
    func networks() {
        #expect(LoginThrottle.network(of: "2001:db8:1:2::1") == "20010db800010002::/64")
        #expect(LoginThrottle.network(of: "2001:db8:1:2:ffff:ffff:ffff:ffff") == "20010db800010002::/64")
        #expect(LoginThrottle.network(of: "2001:db8:1:3::1") == "20010db800010003::/64")
        #expect(LoginThrottle.network(of: "::ffff:192.0.2.7") == "192.0.2.7")
        #expect(LoginThrottle.network(of: "192.0.2.7") == "192.0.2.7")
        #expect(LoginThrottle.network(of: "not an address") == "not an address")
        #expect(LoginThrottle.network(of: "2001:db8::zz") == "2001:db8::zz")
    }

    @Test("two addresses of one /64 share the address counter; another /64 has its own")
    func sharedCounter() {
        let one = LoginThrottle.keys(login: "a", address: "2001:db8::1").address
        #expect(one == LoginThrottle.keys(login: "b", address: "2001:db8::2").address)
        #expect(one != LoginThrottle.keys(login: "a", address: "2001:db8:0:1::1").address)
    }
}

import BenchSupport
import Foundation
import Testing

@Suite("The load tool's reading of the scheduler's times")
struct SchedulerTimesTests {
    @Test("a schedstat line gives run time, run-queue wait and time slices; anything else gives nil")
    func parsing() {
        #expect(
            SchedulerTimes(schedstat: "3386920225 4125154075 28064\n")
                == SchedulerTimes(runNanoseconds: 3_386_920_225, waitNanoseconds: 4_125_154_075, timeslices: 28_064))
        #expect(SchedulerTimes(schedstat: "") == nil)
        #expect(SchedulerTimes(schedstat: "12 34") == nil)
        #expect(SchedulerTimes(schedstat: "12 x 5") == nil)
    }

    @Test("a window counts what each thread did in it: new threads whole, ended ones not at all")
    func window() {
        let before: [Int32: SchedulerTimes] = [
            1: SchedulerTimes(runNanoseconds: 100, waitNanoseconds: 50, timeslices: 10),
            2: SchedulerTimes(runNanoseconds: 500, waitNanoseconds: 500, timeslices: 50),
        ]
        let after: [Int32: SchedulerTimes] = [
            1: SchedulerTimes(runNanoseconds: 160, waitNanoseconds: 80, timeslices: 13),
            3: SchedulerTimes(runNanoseconds: 20, waitNanoseconds: 5, timeslices: 2),
        ]
        #expect(
            SchedulerTimes.spent(from: before, to: after)
                == SchedulerTimes(runNanoseconds: 80, waitNanoseconds: 35, timeslices: 5))
        // A thread id used again by a new thread, whose counters start from zero.
        let reused: [Int32: SchedulerTimes] = [2: SchedulerTimes(runNanoseconds: 7, waitNanoseconds: 3, timeslices: 1)]
        #expect(
            SchedulerTimes.spent(from: before, to: reused)
                == SchedulerTimes(runNanoseconds: 7, waitNanoseconds: 3, timeslices: 1))
    }

    @Test("this process's own threads are found, and have run")
    func ownProcess() {
        let threads = ProcessStats.schedulerTimes(getpid())
        #expect(!threads.isEmpty)
        #expect(threads.values.reduce(SchedulerTimes(), +).runNanoseconds > 0)
    }
}

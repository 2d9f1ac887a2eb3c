import Foundation

/// The command line of `messenger-load` (`--name=value`; every option has a default).
struct LoadOptions {
    var base: String
    var scenarios: Set<String>
    var users: Int
    var groupSize: Int
    var floorRate: Int
    var floorSeconds: Int
    /// The floor's warm-up at the same rate, reported apart (0: none).
    var warmUpSeconds: Int
    /// Seconds of the floor's DMs at a tenth of its rate, with the machine otherwise idle: what
    /// the path costs without waiting for a core (0: none).
    var unloadedSeconds: Int
    var rates: [Int]
    var groupRates: [Int]
    var stepSeconds: Int
    var idle: Int
    /// Sockets one process may hold here: its open-file limit less room for everything else.
    var socketsPerProcess: Int
    /// Set in a worker process of the idle scenario: the gateway it opens its sockets to.
    var idleWorker: String?
    var stormUsers: Int
    var stormSockets: Int
    var stormRate: Int
    var stormSeconds: Int
    /// Sockets the storm's sender sends from, each for its share of the DMs.
    var stormSenders: Int
    var ackInterval: Duration
    var ceilings: Bool
    /// Where the disk probe writes (on the servers' filesystem), or nil for no probe.
    var diskProbe: String?
    var output: String
    var gitRevision: String

    /// The options, `--name=value` each, with their defaults.
    static let usage = """
        usage: messenger-load [--name=value ...]   (the gateway: GATEWAY_URL, default http://127.0.0.1:5000)
          --scenarios=floor,dm,group,idle,storm   --users=100 --group-size=10
          --floor-rate=200 --floor-seconds=60 --warm-up-seconds=10 --unloaded-seconds=10
          --rates=200,400,600,800,1000,1500,2000,3000 --group-rates=20,50,100,150,200,300 --step-seconds=20
          --idle=50000   (spread over gateway replicas when one process may not hold them all)
          --storm-users=100 --storm-sockets=100 --storm-rate=100 --storm-seconds=20 --storm-senders=1
          --ack-interval-ms=1000 --ceilings=yes|no --disk-probe=.run/disk-sync-probe|no --output=results --git=REVISION
        """
    static let names: Set<String> = [
        "scenarios", "users", "group-size", "floor-rate", "floor-seconds", "warm-up-seconds", "unloaded-seconds", "rates",
        "group-rates",
        "step-seconds", "idle",
        "idle-worker",
        "storm-users", "storm-sockets", "storm-rate", "storm-seconds", "storm-senders", "ack-interval-ms", "ceilings",
        "disk-probe", "output", "git",
    ]

    /// The options of `arguments`; nil, after printing the usage, for anything it does not know.
    init?(arguments: [String]) {
        var values: [String: String] = [:]
        for argument in arguments.dropFirst() {
            let parts = argument.drop { $0 == "-" }.split(separator: "=", maxSplits: 1)
            guard argument.hasPrefix("--"), parts.count == 2, Self.names.contains(String(parts[0])) else {
                FileHandle.standardError.write(Data("messenger-load: unknown argument '\(argument)'\n\(Self.usage)\n".utf8))
                return nil
            }
            values[String(parts[0])] = String(parts[1])
        }
        func int(_ name: String, _ fallback: Int) -> Int { values[name].flatMap { Int($0) } ?? fallback }
        func ints(_ name: String, _ fallback: [Int]) -> [Int] {
            values[name].map { $0.split(separator: ",").compactMap { Int($0) } } ?? fallback
        }
        self.base = ProcessInfo.processInfo.environment["GATEWAY_URL"] ?? "http://127.0.0.1:5000"
        self.scenarios = Set((values["scenarios"] ?? "floor,dm,group,idle,storm").split(separator: ",").map(String.init))
        self.users = int("users", 100)
        self.groupSize = int("group-size", 10)
        self.floorRate = int("floor-rate", 200)
        self.floorSeconds = int("floor-seconds", 60)
        self.warmUpSeconds = max(0, int("warm-up-seconds", 10))
        self.unloadedSeconds = max(0, int("unloaded-seconds", 10))
        self.rates = ints("rates", [200, 400, 600, 800, 1000, 1500, 2000, 3000])
        self.groupRates = ints("group-rates", [20, 50, 100, 150, 200, 300])
        self.stepSeconds = int("step-seconds", 20)
        // A process can hold only as many sockets as its open-file limit allows: the gateway and
        // this tool alike.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        self.socketsPerProcess = Int(limit.rlim_cur) - 1_000
        self.idle = int("idle", 50_000)
        self.idleWorker = values["idle-worker"]
        self.stormUsers = int("storm-users", 100)
        self.stormSockets = int("storm-sockets", 100)
        self.stormRate = int("storm-rate", 100)
        self.stormSeconds = int("storm-seconds", 20)
        self.stormSenders = max(1, int("storm-senders", 1))
        self.ackInterval = .milliseconds(int("ack-interval-ms", 1000))
        self.ceilings = values["ceilings"] != "no"
        self.diskProbe = values["disk-probe"] == "no" ? nil : values["disk-probe"] ?? ".run/disk-sync-probe"
        self.output = values["output"] ?? "results"
        self.gitRevision = values["git"] ?? "unknown"
    }
}

import ArgumentParser
import HashRing

struct BenchRing: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Consistent-hash ring: lookups/s, and keys moved when a node joins, beside modulo placement.")

    @Option(help: "Keys looked up and placed.")
    var keys: Int = 200_000

    @Option(help: "Virtual nodes per unit of weight.")
    var virtualNodes: Int = HashRing.virtualNodesPerWeightDefault

    @Option(help: "Nodes in each preference list for the lookup timing.")
    var replicationFactor: Int = 3

    func validate() throws {
        guard keys >= 1000, virtualNodes >= 1, replicationFactor >= 1 else {
            throw ValidationError("--keys ≥ 1000, --virtual-nodes ≥ 1, --replication-factor ≥ 1")
        }
    }

    func run() async throws {
        let keys = (0..<self.keys).map { "order-\($0)" }
        func ring(_ count: Int) -> HashRing {
            HashRing(nodes: Dictionary(uniqueKeysWithValues: (1...count).map { ("api-\($0)", 1) }), virtualNodesPerWeight: virtualNodes)
        }

        let ten = ring(10)
        var sink = 0
        let start = ContinuousClock.now
        for key in keys { sink &+= ten.preferenceList(for: key, count: replicationFactor).count }
        let lookupsPerSecond = Double(keys.count) / BenchSupport.seconds(since: start)

        print("bench ring: \(keys.count) keys, \(virtualNodes) virtual nodes per node (checksum \(sink))")
        print("preference lists of \(replicationFactor) on 10 nodes: \(BenchSupport.format(lookupsPerSecond, 0)) lookups/s")
        print("")
        print("change     ring moved   ideal   modulo moved")
        var json: [String: Any] = ["bench": "ring", "keys": keys.count, "virtual_nodes": virtualNodes, "lookups_per_s": lookupsPerSecond.rounded()]
        for (from, to) in [(3, 4), (10, 11)] {
            let moved = Double(ring(from).movedKeys(to: ring(to), keys: keys)) / Double(keys.count)
            let modulo = HashRing.moduloMovedFraction(from: from, to: to, keys: keys)
            let ideal = 1.0 / Double(to)
            print(
                "\(from) -> \(to)".padding(toLength: 9, withPad: " ", startingAt: 0)
                    + (BenchSupport.format(moved * 100, 1) + "%").leftPad(12) + (BenchSupport.format(ideal * 100, 1) + "%").leftPad(8)
                    + (BenchSupport.format(modulo * 100, 1) + "%").leftPad(15))
            json["moved_\(from)_\(to)"] = (moved * 10_000).rounded() / 10_000
            json["modulo_moved_\(from)_\(to)"] = (modulo * 10_000).rounded() / 10_000
        }
        print(BenchSupport.json(json))
    }
}

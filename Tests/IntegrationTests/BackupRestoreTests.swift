import EventLog
import Foundation
import OrderDomain
import Synchronization
import Testing

/// `orderly backup` under load and `orderly restore` of one node's lost
/// disk, with real processes and files: the restored node catches up from
/// its peers by log identity, losing and doubling nothing.
@Suite(.serialized) struct BackupRestoreTests {
    /// Places orders through every node in turn until told to stop, and
    /// keeps the ids of those acknowledged (201).
    final class Load: Sendable {
        let acknowledged = Mutex<[String]>([])
        let stop = Atomic(false)

        func run(_ cluster: TestCluster, prefix: String) async {
            var index = 0
            while !stop.load(ordering: .relaxed) {
                index += 1
                let id = "\(prefix)-\(index)"
                let node = cluster.ids[index % cluster.ids.count]
                if let reply = try? await PartitionTests.place(id, via: cluster.http(node)), reply.status == 201 {
                    acknowledged.withLock { $0.append(id) }
                }
            }
        }
    }

    @Test func aBackupTakenUnderLoadRestoresALostNodeThatCatchesUpWithoutLossOrDoubles() async throws {
        let cluster = try await PartitionTests.startThree("consistent")
        defer { cluster.stopAll(signal: SIGKILL) }
        let backup = cluster.folder.file("backup")
        let victim = "api-2"

        let load = Load()
        let loading = Task { await load.run(cluster, prefix: "bk") }
        // A failed wait must not leave the load running after the test.
        defer { load.stop.store(true, ordering: .relaxed) }
        try await waitFor("30 orders before the backup", timeout: .seconds(60)) { load.acknowledged.withLock { $0.count } >= 30 }
        let taken = try await OrderlyBinary.run(["backup", "--data", cluster.folder.path, "--to", backup])
        #expect(taken.status == 0, "\(taken.stderr)")
        let atBackup = load.acknowledged.withLock { $0.count }
        try await waitFor("30 more orders after the backup", timeout: .seconds(60)) { load.acknowledged.withLock { $0.count } >= atBackup + 30 }
        load.stop.store(true, ordering: .relaxed)
        await loading.value

        // The manifest names every node's log, its id and how far it reached.
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: backup + "/backup.json"))) as? [String: Any])
        let files = try #require(manifest["files"] as? [[String: Any]])
        #expect(Set(files.compactMap { $0["path"] as? String }) == Set(cluster.ids.map { "\($0)/log.sqlite" }))
        let victimFile = try #require(files.first { $0["path"] as? String == "\(victim)/log.sqlite" })
        let backedUpLogID = try #require(victimFile["log_id"] as? String)
        #expect(victimFile["own_last_offset"] as? Int ?? 0 > 0)
        #expect((victimFile["sha256"] as? String)?.count == 64)

        // A damaged backup is refused before anything is touched.
        let damaged = cluster.folder.file("damaged")
        try FileManager.default.copyItem(atPath: backup, toPath: damaged)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: damaged + "/\(victim)/log.sqlite"))
        try handle.seek(toOffset: 5000)
        try handle.write(contentsOf: Data([0xFF, 0x00, 0xFF]))
        try handle.close()
        let refusedDamaged = try await OrderlyBinary.run(["restore", "--from", damaged, "--data", cluster.folder.path, "--node", victim, "--force"])
        #expect(refusedDamaged.status != 0 && refusedDamaged.stderr.contains("damaged"), "\(refusedDamaged.stderr)")
        // A file in place is not replaced without --force.
        let refusedInPlace = try await OrderlyBinary.run(["restore", "--from", backup, "--data", cluster.folder.path, "--node", victim])
        #expect(refusedInPlace.status != 0 && refusedInPlace.stderr.contains("exists"), "\(refusedInPlace.stderr)")

        // The victim loses its disk; its files come back from the backup.
        let before = try await cluster.log(victim).scan(origin: victim, fromOffset: 1, limit: 100_000)
        cluster.stop(victim, signal: SIGKILL)
        try await waitFor("\(victim) to exit", timeout: .seconds(10)) { !cluster.process(victim).process.isRunning }
        try FileManager.default.removeItem(atPath: (cluster.folder.path as NSString).appendingPathComponent(victim))
        let restored = try await OrderlyBinary.run(["restore", "--from", backup, "--data", cluster.folder.path, "--node", victim])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("\(victim)'s log \(backedUpLogID), with its copies"), "\(restored.stdout)")
        #expect(try cluster.log(victim).logID == backedUpLogID, "the restored log keeps its identity")
        // Its own events are left to its peers' copies (the backup's may be
        // of an abandoned timeline); its copies of their logs are kept.
        let restoredLog = try cluster.log(victim)
        #expect(try await restoredLog.scan(origin: victim, fromOffset: 1, limit: 10).isEmpty)
        #expect(try await !restoredLog.scan(origin: "api-1", fromOffset: 1, limit: 10).isEmpty)
        #expect(Int(before.count) > (victimFile["own_last_offset"] as? Int ?? 0), "the backup is older than what the node had written (else this test shows nothing)")

        try await cluster.start(victim)
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)
        try await waitFor("\(victim) to recover and lead", timeout: .seconds(60)) {
            let reply = try? await HTTP.send(.GET, "http://\(cluster.http(victim))/health/ready")
            return reply?.status == 200
        }
        try await cluster.waitForReplicasToCatchUp()

        // Every acknowledged order is in every node's log, once per version;
        // the victim's own log holds every event it had before, as it was.
        let acknowledged = load.acknowledged.withLock { $0 }
        for id in cluster.ids {
            let log = try cluster.log(id)
            for order in acknowledged {
                let events = try await log.events(orderID: order)
                #expect(events.contains { $0.type == "OrderPlaced" }, "\(id) lacks acknowledged order \(order)")
                #expect(Set(events.map(\.version)).count == events.count, "\(id) holds \(order) with a version twice")
            }
        }
        let after = try await cluster.log(victim).scan(origin: victim, fromOffset: 1, limit: 100_000)
        let afterByOffset = Dictionary(uniqueKeysWithValues: after.map { ($0.offset, $0) })
        let acknowledgedSet = Set(acknowledged)
        for event in before where acknowledgedSet.contains(event.orderID) {
            #expect(afterByOffset[event.offset]?.eventID == event.eventID, "\(victim)'s own log lost or replaced offset \(event.offset)")
        }
        for order in acknowledged.prefix(10) {
            let reply = try await waitUntil("\(order) via \(victim)", timeout: .seconds(20)) {
                let reply = try await HTTP.send(.GET, "http://\(cluster.http(victim))/orders/\(order)")
                return reply.status == 503 ? nil : reply
            }
            #expect(reply.status == 200, "\(order): \(reply.body)")
        }
    }
}

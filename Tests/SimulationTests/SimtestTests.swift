import Foundation
import TestSupport
import Testing

/// `orderly simtest` as a user runs it (the debug build SwiftPM made for the
/// tests, in a process of its own: only a process started with
/// SWIFT_DETERMINISTIC_HASHING iterates dictionaries the same way twice).
/// The README is the list of what is expected: the seeds of the fixed set
/// that fail on today's protocol, and the regression seeds of each known
/// bug. A seed that starts or stops failing shows up here first.
@Suite(.serialized) struct SimtestTests {
    static let readme: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }()

    /// The text between `<!-- name -->` and `<!-- /name -->` in the README.
    static func block(_ name: String) throws -> String {
        guard let start = readme.range(of: "<!-- \(name) -->"), let end = readme.range(of: "<!-- /\(name) -->", range: start.upperBound..<readme.endIndex)
        else { throw TestFailure("the README has no <!-- \(name) --> block") }
        return String(readme[start.upperBound..<end.lowerBound])
    }

    static func summary(_ stdout: String) throws -> [String: Any] {
        guard let line = stdout.split(separator: "\n").last,
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { throw TestFailure("no JSON summary as the last line of:\n\(stdout.suffix(2000))") }
        return json
    }

    /// Failing seeds and their violations, from a run's output.
    static func failures(_ stdout: String) -> [UInt64: [String]] {
        var failures: [UInt64: [String]] = [:]
        var seed: UInt64?
        for line in stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("seed "), let number = UInt64(line.dropFirst(5).prefix { $0 != ":" }) {
                seed = line.contains("FAILED") ? number : nil
                if let seed { failures[seed] = [] }
            } else if let seed, line.hasPrefix("  [") {
                failures[seed]?.append(String(line.dropFirst(2)))
            }
        }
        return failures
    }

    @Test func oneSeedGivesOneHistoryInEveryProcess() async throws {
        let first = try await OrderlyBinary.run(["simtest", "--replay", "21"])
        let again = try await OrderlyBinary.run(["simtest", "--replay", "21"])
        let other = try await OrderlyBinary.run(["simtest", "--replay", "22"])
        let hash = try #require(try Self.summary(first.stdout)["history_hash"] as? String)
        #expect(hash.count == 16)
        #expect(try Self.summary(again.stdout)["history_hash"] as? String == hash, "seed 21 replayed to another history")
        #expect(try Self.summary(other.stdout)["history_hash"] as? String != hash, "seeds 21 and 22 ran the same history")
        #expect(first.stdout == again.stdout, "the whole report of a seed is the same in two processes")
    }

    /// The `churn` fault changes the ring within a seed: a node joins, one
    /// leaves for good, and the checker still finds every acknowledged
    /// write where the new ring puts it.
    @Test func churnAddsANodeAndTakesOneAwayForGood() async throws {
        let run = try await OrderlyBinary.run(["simtest", "--replay", "1", "--faults", "churn", "--trace"])
        #expect(run.stdout.contains("api-4 joins the cluster"), "no node joined")
        #expect(run.stdout.contains("leaves for good") && run.stdout.contains("stopped after leaving"), "no node left")
        #expect(run.stdout.contains("seed 1: passed"), "\(run.stdout.split(separator: "\n").filter { $0.hasPrefix("  [") }.prefix(3))")
    }

    /// `upgrade` stops every node in turn with SIGTERM and starts it again
    /// on its disk (the same log, a new life).
    @Test func upgradeRestartsEveryNodeOnItsDisk() async throws {
        let run = try await OrderlyBinary.run(["simtest", "--replay", "1", "--faults", "upgrade", "--trace"])
        for id in ["api-1", "api-2", "api-3"] {
            #expect(run.stdout.contains("fault: upgrade \(id): SIGTERM"), "\(id) was not upgraded")
            #expect(run.stdout.contains("\(id) starts (life 2"), "\(id) did not start again")
            #expect(run.stdout.split(separator: "\n").contains { $0.contains("\(id) starts (life 2") && $0.hasSuffix("own disk)") }, "\(id) did not start on its disk")
        }
        #expect(run.stdout.contains("seed 1: passed"), "\(run.stdout.split(separator: "\n").filter { $0.hasPrefix("  [") }.prefix(3))")
    }

    /// At five times the usual load a node activates many orders at once
    /// and its gathering fetches carry several orders each. (A replica
    /// broken on purpose to answer a batch only for its first order failed
    /// 7 of 200 seeds at this load, and none of 300 at the usual one.)
    /// Every fault, no violation.
    @Test func aBusyClusterBatchesItsGathersAndStillLosesNothing() async throws {
        let run = try await OrderlyBinary.run(["simtest", "--seeds", "24", "--first", "1", "--customers-per-second", "30", "--trace-lines", "5"])
        let summary = try Self.summary(run.stdout)
        #expect(summary["seeds"] as? Int == 24)
        #expect(summary["failed"] as? Int == 0, "\(Self.failures(run.stdout).sorted { $0.key < $1.key }.prefix(3))")
    }

    @Test func theFixedSeedsFailExactlyAsTheReadmeLists() async throws {
        let expected = Set(try Self.block("expected-failures").split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt64($0) })
        let run = try await OrderlyBinary.run(["simtest", "--seeds", "500", "--first", "1", "--trace-lines", "0"])
        let summary = try Self.summary(run.stdout)
        #expect(summary["seeds"] as? Int == 500)
        let failures = Self.failures(run.stdout)
        #expect(summary["failed"] as? Int == failures.count)
        #expect(run.status == (failures.isEmpty ? 0 : 1), "exit status 1 on any violation")
        let newlyFailing = failures.keys.filter { !expected.contains($0) }.sorted()
        let nowPassing = expected.subtracting(failures.keys).sorted()
        for seed in newlyFailing {
            let violations = failures[seed, default: []].prefix(5).joined(separator: "\n")
            Issue.record("seed \(seed) fails and is not an expected failure:\n\(violations)")
        }
        #expect(nowPassing.isEmpty, "these expected failures pass now: take them off the README's list: \(nowPassing)")
    }

    /// Each row of the README's regression table:
    /// `| seed | simtest options | violation | open or fixed | ... |`.
    static func regressionSeeds() throws -> [(seed: UInt64, options: [String], kind: String, open: Bool)] {
        try block("regression-seeds").split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "") }
            guard cells.count >= 4, let seed = UInt64(cells[0]) else { return nil }
            return (seed, cells[1].split(separator: " ").map(String.init), cells[2], cells[3] == "open")
        }
    }

    @Test func theRegressionSeedsShowTheirBugUntilItIsFixed() async throws {
        let rows = try Self.regressionSeeds()
        #expect(rows.count >= 4, "the README lists regression seeds")
        for (seed, options, kind, open) in rows {
            let run = try await OrderlyBinary.run(["simtest", "--replay", "\(seed)"] + options + ["--trace-lines", "0"])
            let faults = options.joined(separator: " ")
            let violations = Self.failures(run.stdout)[seed] ?? []
            let shows = violations.contains { $0.hasPrefix("[\(kind)]") }
            if open {
                #expect(shows, "seed \(seed) (\(faults)) no longer shows [\(kind)]: if it is fixed, say so in the README: \(violations.prefix(3))")
            } else {
                #expect(!shows, "seed \(seed) (\(faults)) shows [\(kind)] again: \(violations.filter { $0.hasPrefix("[\(kind)]") }.prefix(3))")
            }
        }
    }

    @Test func badArgumentsAreRefusedWithAReason() async throws {
        for arguments in [["--nodes", "2"], ["--faults", "earthquake"], ["--seeds", "0"], ["--workers", "0"], ["--customers-per-second", "0"]] {
            let run = try await OrderlyBinary.run(["simtest"] + arguments)
            #expect(run.status != 0, "\(arguments)")
            #expect(run.stderr.contains("Error"), "\(arguments): \(run.stderr)")
        }
        let help = try await OrderlyBinary.run(["simtest", "--help"])
        #expect(help.stdout.contains("--replay") && help.stdout.contains("orderly simulate"))
    }
}
